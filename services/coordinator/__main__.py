"""Entry point of hive-coordinator (also `hivectl serve`): build the pieces, then run."""

from __future__ import annotations

import asyncio
import os
import sys

from services.coordinator.backends import UnknownBackend, backend_from_env
from services.coordinator.proposed import ReadLimits
from services.coordinator.service import FALLBACK_POLL_SECONDS, DatabaseUnusable, serve
from services.coordinator.sockets import SocketInUse
from services.hive.paths import Paths
from services.hive.protocol import Refusal
from services.hive.statelock import LockError


def main(argv: list[str] | None = None) -> int:
    paths = Paths.from_env()
    try:
        backend = backend_from_env(paths)
        poll = float(os.environ.get("HIVE_FALLBACK_POLL") or FALLBACK_POLL_SECONDS)
        limits = ReadLimits.from_env()
        asyncio.run(serve(paths, backend, fallback_poll=poll, repo_limits=limits))
    except (
        UnknownBackend,
        SocketInUse,
        PermissionError,
        ValueError,
        DatabaseUnusable,
        Refusal,
        LockError,
    ) as e:
        print(f"hive-coordinator: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
