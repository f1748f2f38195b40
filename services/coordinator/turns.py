"""Operator cancels of a running turn: requested on the admin socket, awaited by the harness.

A cancel is a timestamp per agent; `await_cancel {since}` returns at once if a cancel came
at or after `since`, else it waits to be woken by one. Kept in memory: a turn outlives a
coordinator restart only as a turn that was not cancelled.
"""

from __future__ import annotations

import asyncio

from ..hive.db import now
from .connection import Connection


class TurnCancels:
    def __init__(self) -> None:
        self._requested: dict[str, float] = {}
        self._waiters: dict[str, set[asyncio.Future[None]]] = {}

    def request(self, agent: str) -> int:
        """Record a cancel for `agent`'s current turn; the number of watchers woken."""
        self._requested[agent] = now()
        woken = 0
        for fut in self._waiters.get(agent, set()):
            if not fut.done():
                fut.set_result(None)
                woken += 1
        return woken

    def requested_since(self, agent: str, since: float) -> bool:
        return self._requested.get(agent, -1.0) >= since

    async def wait(self, conn: Connection, agent: str, since: float, wait_seconds: float) -> bool:
        if self.requested_since(agent, since):
            return True
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        self._waiters.setdefault(agent, set()).add(fut)
        try:
            await conn.wait_while_connected(fut, wait_seconds)
        finally:
            waiters = self._waiters.get(agent)
            if waiters is not None:
                waiters.discard(fut)
                if not waiters:
                    del self._waiters[agent]
        return self.requested_since(agent, since)
