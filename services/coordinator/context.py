"""What a command handler may use of the running coordinator: its parts, the change feed and
the `list` rows. The service satisfies it; a test can hand a handler anything that does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, Protocol, TypeVar

from ..hive.paths import Paths
from ..hive.wire import AgentRow
from .approvals import Approvals
from .broker import Broker
from .budgets import Budgets
from .changes import ChangeFeed
from .lifecycle import Lifecycle
from .links import ActionLinks
from .logins import Logins
from .questions import Questions
from .turns import TurnCancels

T = TypeVar("T")


class Hive(Protocol):
    paths: Paths
    broker: Broker
    lifecycle: Lifecycle
    approvals: Approvals
    questions: Questions
    logins: Logins
    links: ActionLinks
    budgets: Budgets
    cancels: TurnCancels
    feed: ChangeFeed

    def changed(self, *kinds: str) -> None: ...

    def spawn_task(self, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]: ...

    def agent_rows(self, only: str | None = None) -> list[AgentRow]: ...
