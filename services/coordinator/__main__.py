"""Entry point of hive-coordinator (also `hivectl serve`): build the pieces, then run."""

from __future__ import annotations

import asyncio
import sys

from services.coordinator.backends import UnknownBackend, backend_from_env
from services.coordinator.service import serve
from services.coordinator.sockets import SocketInUse
from services.hive.paths import Paths


def main(argv: list[str] | None = None) -> int:
    paths = Paths.from_env()
    try:
        backend = backend_from_env(paths)
        asyncio.run(serve(paths, backend))
    except (UnknownBackend, SocketInUse, PermissionError) as e:
        print(f"hive-coordinator: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
