"""Action links as both sides see them: their secrets and hashes, the form token, and what a
link may still do (the coordinator, which makes and redeems them; hive-web, which shows them).

A link is a capability for one approval, question or reached spending cap: used once,
before it expires; for an approval only while the approval still shows the diff the link was
made for, for a cap only while the agent is still at it in the window the link was made for.
Only a SHA-256 of its secret is stored. Nothing here writes; nothing here acts.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass

from . import budget, sessions, spend
from .budget import Standing
from .db import ActionLink, Agent, Approval, Event, OperatorQuestion, now
from .events import BudgetReached, EventError, from_json
from .vocab import ApprovalStatus, Code, LinkItem, LinkState, Period, QuestionStatus

DEFAULT_TTL = 24 * 3600.0
"""Seconds a link stays usable (HIVE_NOTIFY_LINK_TTL overrides, read by the coordinator)."""

PATH = "/act/"
"""Where hive-web serves a link: `/act/<secret>`."""


def form_token(secret: str) -> str:
    """The token the link's form carries: its CSRF check without a session, bound to it."""
    return hmac.new(secret.encode(), b"hyperhive action link form", hashlib.sha256).hexdigest()


def item_hash(a: Approval) -> str:
    """The hash of what an approval shows and applies: its diff and the exact bytes."""
    h = hashlib.sha256()
    for part in (str(a.kind), str(a.agent), a.commit_ref or "", a.diff or ""):
        h.update(part.encode("utf-8", "replace") + b"\0")
    h.update(bytes(a.blob or b""))
    return h.hexdigest()


def window_hash(agent: str, period: str, since: str) -> str:
    """The hash that binds a budget link to one agent, period and window (`since`)."""
    h = hashlib.sha256()
    for part in ("budget", agent, period, since):
        h.update(part.encode("utf-8", "replace") + b"\0")
    return h.hexdigest()


def reached(event_id: int) -> BudgetReached | None:
    """The `budget_reached` event of this id (a budget link's item), or None."""
    row: Event | None = Event.get_or_none(
        (Event.id == event_id) & (Event.kind == BudgetReached.event)
    )
    if row is None:
        return None
    try:
        got = from_json(row.payload)
    except EventError:
        return None
    return got if isinstance(got, BudgetReached) else None


@dataclass(frozen=True)
class CapItem:
    """What a budget link acts on: the event it was made for and the period's standing now."""

    event: BudgetReached
    standing: Standing

    @property
    def agent(self) -> str:
        return self.event.agent

    @property
    def period(self) -> Period:
        return self.standing.period

    @property
    def same_window(self) -> bool:
        """The count the event was about is still the one counting (no reset, same day)."""
        return budget.iso(self.standing.since) == self.event.since


def cap_item(event_id: int, at: float | None = None) -> CapItem | None:
    """The budget_reached event of `event_id` with its agent's standing in its period now;
    None when the event, its agent or its period is gone."""
    event = reached(event_id)
    if event is None:
        return None
    agent: Agent | None = Agent.get_or_none(Agent.name == event.agent)
    try:
        period = Period(event.period)
    except ValueError:
        return None
    if agent is None:
        return None
    rows = spend.rows_of([agent.name]).get(agent.name, {})
    standings = spend.standing(agent, rows, now() if at is None else at)
    return CapItem(event, next(s for s in standings if s.period is period))


def cap_closed(item: CapItem) -> str | None:
    """Why a budget link's window no longer needs the operator, or None while it does."""
    e, s = item.event, item.standing
    if not item.same_window:
        return (
            f"{e.agent}'s {e.period} count that reached its cap (counted since {e.since}) is "
            f"no longer the one counting: it was reset or its period rolled over, and "
            f"${s.spent_usd:.2f} is spent in the new count so far"
        )
    if not s.over:
        cap = "no cap" if s.cap_usd is None else f"a cap of ${s.cap_usd:.2f} ({s.source})"
        return (
            f"{e.agent} is no longer at its {e.period} cap: ${s.spent_usd:.2f} spent "
            f"{s.period.noun}, against {cap}"
        )
    return None


def secret_of_path(path: str) -> str | None:
    """The secret of an action-link path (`/act/<secret>`), None for any other path."""
    if not path.startswith(PATH):
        return None
    rest = path[len(PATH) :]
    return rest if rest and "/" not in rest else None


def find(secret: str | None) -> ActionLink | None:
    """The link whose secret this is, used or not, or None (a secret not shaped like ours
    is never looked up)."""
    if not sessions.plausible(secret):
        return None
    assert secret is not None
    link: ActionLink | None = ActionLink.get_or_none(
        ActionLink.token_hash == sessions.digest(secret)
    )
    return link


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(t))


@dataclass
class View:
    """A link and its item as the page shows them, and the sentence saying what is left."""

    state: LinkState
    sentence: str
    link: ActionLink | None = None
    approval: Approval | None = None
    question: OperatorQuestion | None = None
    cap: CapItem | None = None

    @property
    def usable(self) -> bool:
        return self.state.usable

    @property
    def code(self) -> Code:
        return self.state.code

    @property
    def options(self) -> list[str]:
        if self.question is None:
            return []
        return [str(o) for o in json.loads(self.question.options or "[]")]


def inspect(secret: str | None, at: float | None = None) -> View:
    """What the link of `secret` may do now, with its item; a GET shows this, nothing more."""
    t = now() if at is None else at
    link = find(secret)
    if link is None:
        return View(
            LinkState.UNKNOWN,
            "this link is not one the hive made (or it was cut short): open the dashboard "
            "to decide there",
        )
    if link.used_at is not None:
        return View(
            LinkState.USED,
            f"this link was used already ({link.used_action or 'used'} at "
            f"{_when(link.used_at)}): each link works once",
            link,
        )
    if t >= link.expires_at:
        return View(
            LinkState.EXPIRED,
            f"this link expired at {_when(link.expires_at)}: open the dashboard to decide there",
            link,
        )
    if link.item_kind == LinkItem.APPROVAL:
        return _approval_view(link)
    if link.item_kind == LinkItem.BUDGET:
        return _budget_view(link, t)
    return _question_view(link)


def _approval_view(link: ActionLink) -> View:
    a: Approval | None = Approval.get_or_none(Approval.id == link.item_id)
    if a is None:
        return View(LinkState.GONE, f"approval #{link.item_id} no longer exists", link)
    if link.item_hash != item_hash(a):
        return View(
            LinkState.CHANGED,
            f"approval #{a.id} is not the diff this link was made for: open the dashboard",
            link,
        )
    if a.status != ApprovalStatus.PENDING:
        by = f" (by {a.decided_by})" if a.decided_by else ""
        return View(
            LinkState.RESOLVED, f"approval #{a.id} is already {a.status}{by}", link, approval=a
        )
    if a.stale_at is not None:
        return View(
            LinkState.STALE,
            f"approval #{a.id} is stale: the applied config of {a.agent} changed after this "
            "diff was made, so approving it is refused (hm1nd is then told to ask again); "
            "denying still works",
            link,
            approval=a,
        )
    return View(LinkState.OPEN, f"approval #{a.id} waits for you", link, approval=a)


def _question_view(link: ActionLink) -> View:
    q: OperatorQuestion | None = OperatorQuestion.get_or_none(OperatorQuestion.id == link.item_id)
    if q is None:
        return View(LinkState.GONE, f"question #{link.item_id} no longer exists", link)
    if q.status != QuestionStatus.PENDING:
        by = f" (by {q.decided_by})" if q.decided_by else ""
        return View(
            LinkState.RESOLVED, f"question #{q.id} is already {q.status}{by}", link, question=q
        )
    return View(LinkState.OPEN, f"question #{q.id} waits for your answer", link, question=q)


def _budget_view(link: ActionLink, t: float) -> View:
    item = cap_item(int(link.item_id), t)
    if item is None:
        return View(LinkState.GONE, "the agent or the cap this link was for no longer exists", link)
    e = item.event
    if link.item_hash != window_hash(e.agent, e.period, e.since):
        return View(
            LinkState.CHANGED, f"this link was not made for {e.agent}'s {e.period} cap", link
        )
    closed = cap_closed(item)
    if closed is not None:
        return View(LinkState.RESOLVED, closed, link, cap=item)
    return View(LinkState.OPEN, item.standing.sentence(e.agent), link, cap=item)
