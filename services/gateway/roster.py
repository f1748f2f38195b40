"""The agents the gateway serves, as the agents table says, with what each has spent.

Owns each agent's account: its cap (`agents.spend_cap_usd`, written by the coordinator from
the applied `limits.spend_usd`), its spend (the `usage` rows since the agent was created),
its requests in flight and its connections. Every database call here runs on the caller's
thread: the service runs them on its one database thread, never on its event loop.
"""

from __future__ import annotations

from dataclasses import dataclass

from peewee import fn

from ..hive.db import Agent, Usage, now, write_tx
from .metering import Metered

MAX_INFLIGHT = 8
"""Model requests of one agent under way at once (its harness makes one at a time)."""
MAX_CONNECTIONS = 32
"""Open connections on one agent's socket."""


@dataclass(frozen=True)
class AgentRow:
    """What the gateway reads of one agent from the agents table."""

    name: str
    created_at: float
    cap_usd: float | None


@dataclass
class Account:
    """One agent's standing at the gateway."""

    name: str
    created_at: float
    cap_usd: float | None
    spent_usd: float
    inflight: int = 0
    connections: int = 0

    @property
    def capped(self) -> bool:
        return self.cap_usd is not None and self.spent_usd >= self.cap_usd

    def cap_sentence(self) -> str:
        """Why a request of a capped agent is refused, and what lifts it."""
        return (
            f"{self.name} has spent ${self.spent_usd:.4f} of its ${self.cap_usd or 0:.2f} "
            "spending cap (limits.spend_usd): the operator raises the cap in its agent.toml "
            "(an approved config change) to let it go on"
        )


def read_agents() -> list[AgentRow]:
    """Every agent, with the cap of its applied config."""
    return [
        AgentRow(a.name, float(a.created_at), a.spend_cap_usd)
        for a in Agent.select(Agent.name, Agent.created_at, Agent.spend_cap_usd)
    ]


def spent_since(agent: str, since: float) -> float:
    """US dollars metered for `agent` since `since` (its creation: a re-created name starts
    from nothing)."""
    total = (
        Usage.select(fn.COALESCE(fn.SUM(Usage.cost_usd), 0.0))
        .where((Usage.agent == agent) & (Usage.created_at >= since))
        .scalar()
    )
    return float(total or 0.0)


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

    def apply(
        self, rows: list[AgentRow], spent: dict[str, float]
    ) -> tuple[list[str], list[str], bool]:
        """Take the table's rows (`spent` holds the spend of names new or re-created);
        return (names added, names gone, whether any cap changed)."""
        added: list[str] = []
        changed = False
        seen = set()
        for row in rows:
            seen.add(row.name)
            account = self.accounts.get(row.name)
            if account is None or account.created_at != row.created_at:
                fresh = Account(row.name, row.created_at, row.cap_usd, spent.get(row.name, 0.0))
                if account is not None:  # destroyed and made again: a new account, same socket
                    fresh.inflight, fresh.connections = account.inflight, account.connections
                    changed = True
                else:
                    added.append(row.name)
                self.accounts[row.name] = fresh
            elif account.cap_usd != row.cap_usd:
                account.cap_usd = row.cap_usd
                changed = True
        gone = [name for name in self.accounts if name not in seen]
        for name in gone:
            del self.accounts[name]
        return added, gone, changed

    def needs_spend(self, rows: list[AgentRow]) -> list[AgentRow]:
        """The rows whose spend must be read from the database (new or re-created)."""
        return [
            r
            for r in rows
            if (a := self.accounts.get(r.name)) is None or a.created_at != r.created_at
        ]
