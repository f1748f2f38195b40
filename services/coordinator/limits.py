"""How many connections each socket may hold, split from the coordinator's open-file limit.

At start the soft RLIMIT_NOFILE is raised to the hard one, and split: a reserve for the
coordinator's own files (database, git, listening sockets, children), a share of the
admin socket that agents can never take, and the rest for agent and manager sockets
together, at most `PER_SOCKET` on any one of them. A connection over its cap is accepted,
told why in one refusal line, and closed: the offender is refused, the operator is not.
"""

from __future__ import annotations

import asyncio
import resource
import time
from dataclasses import dataclass

from ..hive import log as hlog
from ..hive.protocol import encode, refusal
from ..hive.vocab import Code

RESERVE_MIN = 128
"""File descriptors always left for the coordinator's own files."""
ADMIN_MIN = 32
"""Connections the admin socket may always hold, whatever agents do."""
PER_SOCKET = 32
"""Most connections one agent (or the manager) may hold on its socket; a harness uses 3."""
NOFILE_CEILING = 524288
"""The soft limit is raised to the hard one, but never past this (systemd's default hard)."""
LOG_EVERY = 10.0
"""Seconds between two journal lines about refused connections on one socket."""


def raise_nofile() -> int:
    """Raise the soft open-file limit to the hard one (capped); the soft limit in effect."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = soft if hard == resource.RLIM_INFINITY else max(soft, min(hard, NOFILE_CEILING))
    if target != soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            return soft
    return target


def current_nofile() -> int:
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


@dataclass(frozen=True)
class Limits:
    """The split of `nofile` file descriptors (see the module docstring)."""

    nofile: int
    reserve: int
    admin: int
    agents: int
    per_socket: int

    @classmethod
    def from_nofile(cls, nofile: int) -> Limits:
        reserve = max(RESERVE_MIN, nofile // 8)
        admin = max(ADMIN_MIN, nofile // 16)
        agents = max(PER_SOCKET, nofile - reserve - admin)
        return cls(nofile, reserve, admin, agents, min(PER_SOCKET, agents))


ADMIN_KEY = "admin"


class ConnectionCaps:
    """Counts the connections of every socket and admits a new one only within its caps."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._open: dict[str, int] = {}
        self._agents = 0
        self._refused: dict[str, int] = {}
        self._logged: dict[str, float] = {}

    def count(self, key: str) -> int:
        return self._open.get(key, 0)

    @property
    def agents(self) -> int:
        """Connections open on agent and manager sockets together."""
        return self._agents

    def admit(self, key: str, who: str) -> str | None:
        """Count a new connection on socket `key`; None if admitted, else the refusal."""
        why = self._over(key, who)
        if why is not None:
            self._note_refusal(key, who, why)
            return why
        self._open[key] = self._open.get(key, 0) + 1
        if key != ADMIN_KEY:
            self._agents += 1
        return None

    def release(self, key: str) -> None:
        left = self._open.get(key, 0) - 1
        if left > 0:
            self._open[key] = left
        else:
            self._open.pop(key, None)
        if key != ADMIN_KEY:
            self._agents -= 1

    def _over(self, key: str, who: str) -> str | None:
        lim = self.limits
        have = self._open.get(key, 0)
        if key == ADMIN_KEY:
            if have >= lim.admin:
                return (
                    f"the admin socket already holds {have} connections, its limit: close "
                    "some (a script that opens one per request and never closes it?)"
                )
            return None
        if have >= lim.per_socket:
            return (
                f"the socket of {who} already holds {have} connections, the most one socket "
                f"may hold: close some (a harness needs 3)"
            )
        if self._agents >= lim.agents:
            return (
                f"agent sockets hold {self._agents} connections together, the most the "
                f"coordinator's open-file limit ({lim.nofile}) allows: close some"
            )
        return None

    def _note_refusal(self, key: str, who: str, why: str) -> None:
        self._refused[key] = self._refused.get(key, 0) + 1
        at = time.monotonic()
        if at - self._logged.get(key, -LOG_EVERY) < LOG_EVERY:
            return
        self._logged[key] = at
        count = self._refused.pop(key)
        hlog.log(
            f"refused {count} connection(s) on the socket of {who}: {why}",
            kind="connection_refused",
            agent=None if key == ADMIN_KEY else who,
            priority=hlog.WARNING,
        )


class RefusedConnection(asyncio.Protocol):
    """A connection over its cap: one refusal line, then closed. It reads nothing."""

    def __init__(self, why: str) -> None:
        self.why = why

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(encode(refusal(self.why, Code.UNAVAILABLE)))
        transport.close()
