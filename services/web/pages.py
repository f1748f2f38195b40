"""What each page and each live section looks like: `views` data through the bottle templates.

A topic is what one browser tab watches: `index` (the dashboard) or `agent:<name>`. A
section is one live region of it, keyed by row so a push carries only changed rows. This
module renders; it never talks to the hive (agent rows are handed in).
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bottle  # type: ignore[import-untyped]

from ..hive.vocab import AgentState, Period
from ..hive.wire import AgentRow
from . import views

TEMPLATES = Path(__file__).resolve().parent / "templates"
LOOKUP = [str(TEMPLATES) + "/"]

INDEX = "index"
WAITING = "waiting"
HISTORY = "history"
AGENTS = "agents"
AGENT_PREFIX = "agent:"

ROW_KINDS = frozenset({"agents", "turns", "messages"})
"""Changes that alter a `list` row (state, turn, inbox count)."""

SPEND_KINDS = frozenset({"agents", "turns", "notifications"})
"""Changes that move what was spent or its caps: a turn's requests, a cap set or reset, a cap
reached (its budget_reached is a notification)."""
NOTES = frozenset({"notifications"})
COUNT_KINDS = frozenset({"approvals", "questions", "agents"})
"""Changes that move the header's counts (waiting counts crashed agents too)."""

INDEX_SECTIONS: dict[str, frozenset[str]] = {
    "notes": NOTES,
    "approvals": frozenset({"approvals"}),
    "questions": frozenset({"questions"}),
    "updatebar": frozenset({"agents"}),
    "agents": ROW_KINDS,
    "agentsmore": frozenset({"agents"}),
    "hivespend": SPEND_KINDS,
    "decisions": frozenset({"approvals"}),
}
AGENTS_SECTIONS: dict[str, frozenset[str]] = {
    "notes": NOTES,
    "updatebar": frozenset({"agents"}),
    "allagents": ROW_KINDS,
}
WAITING_SECTIONS: dict[str, frozenset[str]] = {
    "notes": NOTES,
    "approvals": frozenset({"approvals"}),
    "questions": frozenset({"questions"}),
    "crashed": ROW_KINDS,
    "overbudget": SPEND_KINDS,
}
HISTORY_SECTIONS: dict[str, frozenset[str]] = {
    "notes": NOTES,
    "history": frozenset({"history"}),
}
PAGE_TOPICS = {
    INDEX: INDEX_SECTIONS,
    AGENTS: AGENTS_SECTIONS,
    WAITING: WAITING_SECTIONS,
    HISTORY: HISTORY_SECTIONS,
}
"""The topics of pages that are not an agent's, each with its live sections."""
AGENT_SECTIONS: dict[str, frozenset[str]] = {
    "notes": NOTES,
    "staterow": ROW_KINDS,
    "turn": ROW_KINDS,
    "budget": SPEND_KINDS,
    "inbox": frozenset({"messages"}),
}


ROW_SECTIONS = frozenset({"agents", "agentsmore", "allagents", "updatebar", "staterow", "turn"})
"""Sections rendered from the `list` rows (the hub fetches them only for these)."""


@dataclass(frozen=True)
class Keyed:
    """A section made of rows: their keys in display order and each row's HTML."""

    order: list[str]
    html: dict[str, str]

    def joined(self) -> str:
        return "".join(self.html[k] for k in self.order)


Section = Keyed | str


def agent_topic(name: str) -> str:
    return AGENT_PREFIX + name


def topic_agent(topic: str) -> str | None:
    return topic[len(AGENT_PREFIX) :] if topic.startswith(AGENT_PREFIX) else None


def sections_of(topic: str) -> dict[str, frozenset[str]]:
    return AGENT_SECTIONS if topic_agent(topic) is not None else PAGE_TOPICS[topic]


def known_topic(topic: str) -> bool:
    return topic in PAGE_TOPICS or topic_agent(topic) is not None


def affected(topic: str, kinds: Iterable[str]) -> list[str]:
    changed = frozenset(kinds)
    return [name for name, deps in sections_of(topic).items() if deps & changed]


def render(template: str, /, **kw: Any) -> str:
    return str(bottle.template(template, template_lookup=LOOKUP, **kw))


class Renderer:
    """Renders sections and pages; a row whose data did not change is not rendered again."""

    def __init__(
        self,
        cache_size: int = 8192,
        hive_caps: Mapping[Period, float | None] | None = None,
        index_agents: int = views.INDEX_AGENTS,
    ) -> None:
        self.index_agents = index_agents
        """The most agents the index lists (HIVE_WEB_INDEX_AGENTS)."""
        self.hive_caps = dict(hive_caps or {})
        """The hive-wide default caps (HIVE_BUDGET_<PERIOD>_USD), shown beside its spend."""
        self._cache: OrderedDict[str, str] = OrderedDict()
        self._size = cache_size
        self._lock = threading.Lock()

    def fragment(self, template: str, **kw: Any) -> str:
        key = template + "\0" + json.dumps(kw, sort_keys=True, default=str)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        html = render(template, **kw)
        with self._lock:
            self._cache[key] = html
            if len(self._cache) > self._size:
                self._cache.popitem(last=False)
        return html

    def _keyed(self, template: str, var: str, prefix: str, items: list[dict[str, Any]]) -> Keyed:
        order: list[str] = []
        html: dict[str, str] = {}
        for item in items:
            key = f"{prefix}-{item['id'] if 'id' in item else item['name']}"
            order.append(key)
            html[key] = self.fragment(template, **{var: item})
        return Keyed(order, html)

    def section(self, topic: str, name: str, rows: list[AgentRow]) -> Section:
        agent = topic_agent(topic)
        if name == "notes":
            return self._keyed("note", "n", "note", views.notifications())
        if name == "approvals":
            return self._keyed("approval", "a", "approval", views.approvals())
        if name == "decisions":
            return self._keyed("decision", "a", "decision", views.decisions())
        if name == "questions":
            return self._keyed("question", "q", "question", views.questions())
        if name == "agents":
            return self._keyed(
                "agent_row", "a", "agent", views.index_agents(rows, self.index_agents)[0]
            )
        if name == "agentsmore":
            return self.fragment(
                "agentsmore", shown=min(len(rows), self.index_agents), total=len(rows)
            )
        if name == "allagents":
            return self._keyed("agent_row", "a", "agent", [views.agent_view(r) for r in rows])
        if name == "hivespend":
            return self.fragment("hivespend", h=views.hive_spend(self.hive_caps))
        if name == "overbudget":
            return self._keyed("over_row", "o", "over", views.over_budget())
        if name == "crashed":
            crashed = [views.agent_view(r) for r in rows if r["state"] == AgentState.FAILED]
            return self._keyed("agent_row", "a", "agent", crashed)
        if name == "history":
            return self._keyed("decision_row", "d", "hist", views.history())
        if name == "updatebar":
            return self.fragment("updatebar", stale=views.stale(rows))
        if agent is None:
            raise KeyError(f"no section {name!r} on {topic}")
        row = next((r for r in rows if r["name"] == agent), None)
        if name == "staterow":
            return self.fragment("staterow", a=None if row is None else views.agent_view(row))
        if name == "turn":
            state = AgentState.of(row.get("state") if row else None)
            return self.fragment("turn", t=views.turn_view(row.get("turn") if row else None, state))
        if name == "inbox":
            return self._keyed("message", "m", "msg", views.inbox(agent))
        if name == "budget":
            return self.fragment("budget", name=agent, periods=views.budget_of(agent))
        raise KeyError(f"no section {name!r} on {topic}")

    def sections(
        self, topic: str, names: Iterable[str], rows: list[AgentRow]
    ) -> dict[str, Section]:
        with views.read_tx():
            return {name: self.section(topic, name, rows) for name in names}

    def page(self, topic: str, rows: list[AgentRow], csrf: str, banner: str | None) -> str:
        """A whole page, with the same section HTML the live updates carry."""
        names = list(sections_of(topic))
        with views.read_tx():
            sections = {n: self.section(topic, n, rows) for n in names}
            counts = views.counts()
        joined = {n: s.joined() if isinstance(s, Keyed) else s for n, s in sections.items()}
        agent = topic_agent(topic)
        return render(
            "agent" if agent is not None else topic,
            name=agent,
            sections=joined,
            counts=counts,
            csrf=csrf,
            topic=topic,
            server_time=f"{time.time():.3f}",
            banner=banner,
        )
