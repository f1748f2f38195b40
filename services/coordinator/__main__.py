"""Entry point of hive-coordinator (also `hivectl serve`): build the pieces, then run."""

from __future__ import annotations

import asyncio
import os
import sys

from ..hive.paths import Paths
from ..hive.protocol import Refusal
from ..hive.statelock import LockError
from .backends import UnknownBackend, backend_from_env
from .proposed import ReadLimits
from .service import FALLBACK_POLL_SECONDS, DatabaseUnusable, serve
from .sockets import SocketInUse


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
