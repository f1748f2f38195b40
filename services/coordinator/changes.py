"""The change feed: a version number that grows whenever something the dashboard shows changes.

`watch {after}` returns as soon as the version passes `after`, with the kinds of state that
changed since then, so the web UI pushes updates the moment they happen without polling.
"""

from __future__ import annotations

import asyncio

from ..hive.vocab import Change
from .connection import Connection

KINDS = tuple(Change)


class ChangeFeed:
    def __init__(self) -> None:
        self.version = 0
        self._kind_versions: dict[str, int] = dict.fromkeys(KINDS, 0)
        self._waiters: set[asyncio.Future[None]] = set()

    def bump(self, *kinds: str) -> None:
        self.version += 1
        for kind in kinds or KINDS:
            self._kind_versions[kind] = self.version
        for fut in self._waiters:
            if not fut.done():
                fut.set_result(None)
        self._waiters.clear()

    def since(self, after: int) -> list[str]:
        return [k for k, v in self._kind_versions.items() if v > after]

    async def wait(
        self, conn: Connection, after: int, wait_seconds: float
    ) -> tuple[int, list[str]]:
        """The version and changed kinds once the version passes `after` (or at the timeout)."""
        if after < 0 or after > self.version:  # a first watch, or one from before a restart
            return self.version, list(KINDS)
        if self.version == after:
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.add(fut)
            try:
                await conn.wait_while_connected(fut, wait_seconds)
            finally:
                self._waiters.discard(fut)
        return self.version, self.since(after)
