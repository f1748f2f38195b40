"""Container backends: how an agent's payload is created, started and stopped.

`backend_from_env()` picks one by `HIVE_BACKEND`; a backend knows nothing of approvals,
messages or SQLite beyond what it is handed.
"""

from __future__ import annotations

import os
from typing import Protocol

from services.hive.paths import Paths


class Backend(Protocol):
    name: str

    def create(self, agent: str) -> None:
        """Prepare what the agent's container needs on disk (idempotent)."""


class UnknownBackend(ValueError):
    pass


def backend_from_env(paths: Paths, env: dict[str, str] | None = None) -> Backend:
    choice = (env if env is not None else dict(os.environ)).get("HIVE_BACKEND") or "nspawn"
    if choice == "process":
        from services.coordinator.backends.process import ProcessBackend

        return ProcessBackend(paths)
    raise UnknownBackend(
        f"HIVE_BACKEND={choice!r} is not available yet: use 'process' "
        "(nspawn and nixos arrive with the systemd integration)"
    )
