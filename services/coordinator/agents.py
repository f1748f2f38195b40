"""The agents table as the coordinator keeps it: records, their states, the rows `list` shows.

A row's tokens and cost are the gateway's metering (the `usage` table), never what the
harness reports of itself: the current turn's rows, and the spend since the agent was made.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast

from peewee import fn

from ..hive import spend
from ..hive.budget import Standing, tightest
from ..hive.db import Agent, Budget, Message, TurnState, Usage, now, write_tx
from ..hive.protocol import Refusal
from ..hive.vocab import AgentState, Code
from ..hive.wire import AgentRecord, TurnRow
from .inboxes import set_aside_count


class AgentExists(Refusal):
    code = Code.CONFLICT


class NoSuchAgent(Refusal):
    code = Code.NOT_FOUND


_names: set[str] | None = None
"""Names of the agents, cached: the coordinator is the only writer of the agents table."""


def _forget() -> None:
    global _names
    _names = None


def get(name: str) -> Agent:
    agent: Agent | None = Agent.get_or_none(Agent.name == name)
    if agent is None:
        raise NoSuchAgent(f"no agent named {name!r}: see `hivectl list`")
    return agent


def exists(name: str) -> bool:
    global _names
    if _names is None:
        _names = set(names())
    return name in _names


def require(name: str) -> str:
    """`name` if such an agent exists, else a refusal."""
    if not exists(name):
        raise NoSuchAgent(f"no agent named {name!r}: see `hivectl list`")
    return name


def create(
    name: str, *, kind: str = "agent", state: str = AgentState.STOPPED, note: str | None = None
) -> Agent:
    """Insert a new agent record; refuse a name that is taken."""
    with write_tx():
        if Agent.select().where(Agent.name == name).exists():
            raise AgentExists(f"agent {name!r} already exists")
        agent: Agent = Agent.create(name=name, kind=kind, state=state, note=note)
    _forget()
    return agent


def delete(name: str) -> None:
    """Remove an agent's record, its turn state and its budget (its messages and its usage
    stay, as history; a name made again starts with nothing spent)."""
    with write_tx():
        Agent.delete().where(Agent.name == name).execute()
        TurnState.delete().where(TurnState.agent == name).execute()
        Budget.delete().where(Budget.agent == name).execute()
    _forget()


def set_state(name: str, state: str, note: str | None = None) -> None:
    Agent.update(state=state, note=note, updated_at=now()).where(Agent.name == name).execute()


def names() -> list[str]:
    return [a.name for a in Agent.select(Agent.name).order_by(Agent.name)]


def rows(only: str | None = None) -> list[AgentRecord]:
    """The `list` / `agent_status` rows: state, model, turn, backlog, per agent."""
    query = Agent.select().order_by(Agent.kind.desc(), Agent.name)
    if only is not None:
        query = query.where(Agent.name == only)
    agents = list(query)
    wanted = [a.name for a in agents]
    turns = {t.agent: t for t in TurnState.select().where(TurnState.agent.in_(wanted))}
    waiting = (
        Message.delivered_at.is_null()
        & Message.set_aside_at.is_null()
        & Message.dropped_at.is_null()
        & Message.recipient.in_(wanted)
    )
    backlog: dict[str, int] = dict(
        Message.select(Message.recipient, fn.COUNT(Message.id))
        .where(waiting)
        .group_by(Message.recipient)
        .tuples()  # type: ignore[arg-type]
    )
    aside = set_aside_count(wanted) if wanted else {}
    metered = turn_usage(wanted)
    spent = spent_usd(wanted)
    budgets = spend.capped(wanted)
    return [
        _row(
            a,
            turns.get(a.name),
            backlog.get(a.name, 0),
            aside.get(a.name, 0),
            metered.get(a.name, Metered()),
            spent.get(a.name, 0.0),
            tightest(budgets.get(a.name, [])),
        )
        for a in agents
    ]


@dataclass(frozen=True)
class Metered:
    """A turn's tokens and cost as the gateway metered them (the `usage` rows of the turn)."""

    input_tokens: int = 0
    """Uncached input, cache writes included (as the harness has always counted it)."""
    output_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float = 0.0


def turn_usage(names: list[str]) -> dict[str, Metered]:
    """Each agent's current turn (by the id its harness reported) as metered: one query."""
    if not names:
        return {}
    query = (
        Usage.select(
            Usage.agent,
            fn.SUM(Usage.input_tokens + Usage.cache_write_tokens),
            fn.SUM(Usage.output_tokens),
            fn.SUM(Usage.cache_read_tokens),
            fn.SUM(Usage.cost_usd),
        )
        .join(TurnState, on=(TurnState.agent == Usage.agent) & (TurnState.turn == Usage.turn))
        .where(Usage.agent.in_(names))
        .group_by(Usage.agent)
        .tuples()
    )
    return {
        str(agent): Metered(int(i or 0), int(o or 0), int(c or 0), float(cost or 0.0))
        for agent, i, o, c, cost in cast("Iterable[tuple[Any, ...]]", query)
    }


def spent_usd(names: list[str]) -> dict[str, float]:
    """What each agent's model requests cost since it was made (what its cap counts)."""
    if not names:
        return {}
    query = (
        Usage.select(Usage.agent, fn.SUM(Usage.cost_usd))
        .join(Agent, on=(Agent.name == Usage.agent) & (Usage.created_at >= Agent.created_at))
        .where(Usage.agent.in_(names))
        .group_by(Usage.agent)
        .tuples()
    )
    rows = cast("Iterable[tuple[Any, ...]]", query)
    return {str(agent): float(total or 0.0) for agent, total in rows}


def _row(
    agent: Agent,
    turn: TurnState | None,
    backlog: int,
    aside: int,
    metered: Metered,
    spent: float,
    budget: Standing | None,
) -> AgentRecord:
    return {
        "name": agent.name,
        "kind": agent.kind,
        "state": agent.state,
        "note": agent.note,
        "model": agent.model,
        "applied_sha": agent.applied_sha,
        "inbox": backlog,
        "set_aside": aside,
        "created_at": agent.created_at,
        "turn": None if turn is None else turn_dict(turn, metered),
        "spent_usd": round(spent, 6),
        "budget": None if budget is None else budget.to_dict(),
    }


def turn_dict(turn: TurnState, metered: Metered) -> TurnRow:
    """The harness's report of its turn (state, tool, times) with the gateway's numbers."""
    return {
        "state": turn.state,
        "tool": turn.tool,
        "detail": turn.detail,
        "started_at": turn.turn_started_at,
        "ended_at": turn.turn_ended_at,
        "input_tokens": metered.input_tokens,
        "output_tokens": metered.output_tokens,
        "cached_tokens": metered.cached_tokens,
        "cost_usd": round(metered.cost_usd, 6),
        "updated_at": turn.updated_at,
        "turn": turn.turn,
    }
