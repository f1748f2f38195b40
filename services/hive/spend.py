"""What agents spent, from the gateway's `usage` rows, and their budgets' standing.

The queries behind `hive.budget`'s words: the gateway reads an agent's spend in a period
when it first sees it (and after a reset), the coordinator and the dashboard read every
period's standing to show spent against cap.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, cast

from peewee import fn

from .budget import Standing, over, window_start
from .db import Agent, Budget, Usage, now
from .vocab import CapSource, Period


def spent_since(agent: str | None, since: float) -> float:
    """US dollars metered for `agent` (None: every agent, the hive) since `since`."""
    query = Usage.select(fn.COALESCE(fn.SUM(Usage.cost_usd), 0.0)).where(Usage.created_at >= since)
    if agent is not None:
        query = query.where(Usage.agent == agent)
    return float(query.scalar() or 0.0)


def rows_of(names: Iterable[str]) -> dict[str, dict[Period, Budget]]:
    """The budgets rows of these agents, by agent and period."""
    out: dict[str, dict[Period, Budget]] = {}
    for b in Budget.select().where(Budget.agent.in_(list(names))):
        out.setdefault(b.agent, {})[Period(b.period)] = b
    return out


def _standing(b: Budget, created_at: float, t: float) -> Standing:
    period = Period(b.period)
    since = window_start(period, t, created_at, float(b.counted_from))
    return Standing(
        period=period,
        cap_usd=b.cap_usd,
        source=CapSource(b.source),
        spent_usd=spent_since(b.agent, since),
        since=since,
        config_usd=b.config_usd,
        operator_usd=b.operator_usd,
    )


def capped(names: Iterable[str] | None = None) -> dict[str, list[Standing]]:
    """The standing of every period with a cap, by agent (an agent with none is absent)."""
    t = now()
    query = (
        Budget.select(Budget, Agent.created_at.alias("agent_created_at"))
        .join(Agent, on=(Agent.name == Budget.agent))
        .where(Budget.cap_usd.is_null(False))
        .order_by(Budget.agent, Budget.period)
    )
    if names is not None:
        query = query.where(Budget.agent.in_(list(names)))
    out: dict[str, list[Standing]] = {}
    for b in query.objects():  # the agent's creation as an attribute of the row
        out.setdefault(b.agent, []).append(_standing(b, float(cast(Any, b).agent_created_at), t))
    return out


def over_budget() -> dict[str, Standing]:
    """Agents at a cap, with the period that stops them."""
    return {name: s for name, got in capped().items() if (s := over(got)) is not None}


def standing(agent: Agent, rows: Mapping[Period, Budget], t: float) -> list[Standing]:
    """Every period of `agent`'s budget at time `t`, capped or not, with its spend."""
    out = []
    created = float(agent.created_at)
    for period in Period:
        row = rows.get(period)
        since = window_start(period, t, created, float(row.counted_from) if row else 0.0)
        out.append(
            Standing(
                period=period,
                cap_usd=row.cap_usd if row else None,
                source=CapSource(row.source) if row else CapSource.NONE,
                spent_usd=spent_since(agent.name, since),
                since=since,
                config_usd=row.config_usd if row else None,
                operator_usd=row.operator_usd if row else None,
            )
        )
    return out
