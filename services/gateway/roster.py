"""The agents the gateway serves, as the agents table says, with what each has spent.

Owns each agent's account: its caps in force (the `budgets` rows the coordinator writes from
the applied `[budget]`, the operator's caps and the hive's defaults), its spend in each
capped period's window and since it was made (from the `usage` rows, then counted here as
it meters), its requests in flight and its connections. Every database call here runs on
the caller's thread: the service runs them on its one database thread, never on its event
loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..hive.budget import Standing, window_start
from ..hive.db import Agent, Budget, Event, Usage, now, write_tx
from ..hive.events import BudgetReached
from ..hive.inbox import notify_manager
from ..hive.spend import spent_since
from ..hive.vocab import CapSource, Period
from .metering import Metered

MAX_INFLIGHT = 8
"""Model requests of one agent under way at once (its harness makes one at a time)."""
MAX_CONNECTIONS = 32
"""Open connections on one agent's socket."""


@dataclass(frozen=True)
class CapRow:
    """One capped period of an agent, as the budgets table has it."""

    cap_usd: float
    counted_from: float
    source: CapSource


@dataclass(frozen=True)
class AgentRow:
    """What the gateway reads of one agent: its creation and its caps in force."""

    name: str
    created_at: float
    caps: dict[Period, CapRow] = field(default_factory=dict)


@dataclass
class Limit:
    """One capped period of an account: the cap, and the spend of its current window."""

    period: Period
    cap: CapRow
    since: float
    spent: float

    def standing(self) -> Standing:
        return Standing(self.period, self.cap.cap_usd, self.cap.source, self.spent, self.since)


@dataclass
class Account:
    """One agent's standing at the gateway."""

    name: str
    created_at: float
    spent_usd: float
    """Since the agent was made, capped or not (the status request shows it)."""
    limits: dict[Period, Limit] = field(default_factory=dict)
    inflight: int = 0
    connections: int = 0
    told: set[tuple[Period, float]] = field(default_factory=set)
    """The windows whose cap this gateway has said was reached (one event each)."""

    def roll(self, t: float) -> None:
        """A day or a month that ended starts a new window with nothing spent in it (every
        usage row goes through `add`, which rolls first)."""
        for limit in self.limits.values():
            since = window_start(limit.period, t, self.created_at, limit.cap.counted_from)
            if since != limit.since:
                limit.since, limit.spent = since, 0.0

    def add(self, cost: float, t: float) -> None:
        self.roll(t)
        self.spent_usd += cost
        for limit in self.limits.values():
            limit.spent += cost

    def stop(self, t: float) -> Limit | None:
        """The period whose cap is reached at `t` (at the cap counts as over it), if any."""
        self.roll(t)
        return next((x for x in self.limits.values() if x.spent >= x.cap.cap_usd), None)


def read_agents() -> list[AgentRow]:
    """Every agent, with the caps in force of its budget."""
    caps: dict[str, dict[Period, CapRow]] = {}
    for b in Budget.select().where(Budget.cap_usd.is_null(False)):
        caps.setdefault(b.agent, {})[Period(b.period)] = CapRow(
            float(b.cap_usd or 0.0), float(b.counted_from), CapSource(b.source)
        )
    return [
        AgentRow(a.name, float(a.created_at), caps.get(a.name, {}))
        for a in Agent.select(Agent.name, Agent.created_at)
    ]


Wanted = tuple[str, Period | None]
"""A spend to read: an agent's since its creation (None) or in one capped period's window."""


def read_spent(wanted: dict[Wanted, float]) -> dict[Wanted, float]:
    """Each wanted spend, read from `usage` since the time it counts from."""
    return {key: spent_since(key[0], since) for key, since in wanted.items()}


def tell_reached(event: BudgetReached) -> bool:
    """Record a budget_reached for hm1nd (its inbox, the dashboard's notes, the operator's
    outbox) unless this window's was recorded before; whether it is new."""
    with write_tx():
        said = Event.select().where(
            (Event.kind == event.event)
            & (Event.agent == event.agent)
            & Event.payload.contains(f'"period": "{event.period}"')
            & Event.payload.contains(f'"since": "{event.since}"')
        )
        if said.exists():
            return False
        notify_manager(event)
    return True


def record(
    agent: str,
    turn: str | None,
    usage: Metered,
    request_id: str | None,
    started_at: float,
) -> float:
    """Write one usage row; its cost in US dollars."""
    price = usage.cost_usd
    with write_tx():
        Usage.create(
            agent=agent,
            turn=turn,
            model=usage.model or "unknown",
            request_id=request_id[:100] if request_id else None,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_write_tokens=usage.cache_write_tokens,
            cache_read_tokens=usage.cache_read_tokens,
            cost_usd=price,
            complete=usage.complete,
            started_at=started_at,
            created_at=now(),
        )
    return price


class Roster:
    """The accounts by agent name; `apply()` brings them in line with the agents table."""

    def __init__(self) -> None:
        self.accounts: dict[str, Account] = {}

    def get(self, name: str) -> Account | None:
        return self.accounts.get(name)

    def wanted(self, rows: list[AgentRow], t: float) -> dict[Wanted, float]:
        """The spends `apply` needs read from the database, each with the time it counts
        from: all of a new or re-made agent's, and each window that is new or was reset."""
        out: dict[Wanted, float] = {}
        for row in rows:
            account = self.accounts.get(row.name)
            fresh = account is None or account.created_at != row.created_at
            if fresh:
                out[(row.name, None)] = row.created_at
            for period, cap in row.caps.items():
                had = None if fresh or account is None else account.limits.get(period)
                if had is None or had.cap.counted_from != cap.counted_from:
                    out[(row.name, period)] = window_start(
                        period, t, row.created_at, cap.counted_from
                    )
        return out

    def apply(
        self, rows: list[AgentRow], spent: dict[Wanted, float], t: float
    ) -> tuple[list[str], list[str], bool]:
        """Take the table's rows (`spent` holds what `wanted` asked for); return (names
        added, names gone, whether any cap or count changed)."""
        added: list[str] = []
        changed = False
        seen = set()
        for row in rows:
            seen.add(row.name)
            old = self.accounts.get(row.name)
            account = old
            if old is None or old.created_at != row.created_at:
                account = Account(row.name, row.created_at, spent.get((row.name, None), 0.0))
                if old is not None:  # destroyed and made again: a new account, same socket
                    account.inflight, account.connections = old.inflight, old.connections
                    changed = True
                else:
                    added.append(row.name)
                self.accounts[row.name] = account
            assert account is not None
            limits: dict[Period, Limit] = {}
            for period, cap in row.caps.items():
                had = account.limits.get(period)
                if (row.name, period) in spent or had is None:
                    since = window_start(period, t, row.created_at, cap.counted_from)
                    limits[period] = Limit(period, cap, since, spent.get((row.name, period), 0.0))
                else:
                    limits[period] = Limit(period, cap, had.since, had.spent)
            if {p: x.cap for p, x in limits.items()} != {
                p: x.cap for p, x in account.limits.items()
            }:
                changed = True
            account.limits = limits
            account.roll(t)
        gone = [name for name in self.accounts if name not in seen]
        for name in gone:
            del self.accounts[name]
        return added, gone, changed
