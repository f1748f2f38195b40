"""What the coordinator's parts may ask of the running service, and nothing more.

Lifecycle, approvals and questions are built with an `Effects` (and the few collaborators
they use, passed in directly) instead of the whole `Coordinator`, so each can be built
alone in a test and none of them imports the service.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, Protocol, TypeVar

from ..hive.events import HelperEvent

T = TypeVar("T")


class Effects(Protocol):
    def changed(self, *kinds: str) -> None:
        """Something the dashboard shows changed (the change feed)."""

    def notify(self, event: HelperEvent) -> None:
        """A helper event for hm1nd (durable first, then hm1nd is woken)."""

    def deliver_system(self, recipient: str, body: str) -> None:
        """A message from `system` to another agent (e.g. its own operator_answered)."""

    def spawn_task(self, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Run `coro` in the background; its failure is logged, never lost."""


class AgentSockets(Protocol):
    """Serving an agent's own socket, which lives with the coordinator's listeners."""

    async def serve_agent(self, name: str) -> None: ...

    async def unserve_agent(self, name: str) -> None: ...
