"""Entry point of hive-gateway: read the settings, then run the gateway."""

from __future__ import annotations

import asyncio
import sys

from ..hive.paths import Paths
from ..hive.statelock import LockError
from .service import GatewayError, serve
from .settings import SettingsError, from_env


def main(argv: list[str] | None = None) -> int:
    try:
        settings = from_env()
        asyncio.run(serve(Paths.from_env(), settings))
    except (SettingsError, GatewayError, LockError, PermissionError) as e:
        print(f"hive-gateway: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
