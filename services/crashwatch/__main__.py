"""Entry point of hive-crashwatch: open the database, build the watcher, run until stopped."""

from __future__ import annotations

import os
import sys

from ..hive import log as hlog
from ..hive.db import open_db
from ..hive.paths import Paths
from .service import RECONCILE_EVERY, CrashWatchService


def main(argv: list[str] | None = None) -> int:
    hlog.set_identifier("hive-crashwatch")
    paths = Paths.from_env()
    try:
        every = float(os.environ.get("HIVE_CRASHWATCH_RECONCILE") or RECONCILE_EVERY)
        db = open_db(paths.db)
    except (OSError, ValueError) as e:
        print(f"hive-crashwatch: cannot start: {e}", file=sys.stderr)
        return 1
    try:
        return CrashWatchService(
            paths.doorbell, reconcile_every=every, notify_doorbell=paths.notify_doorbell
        ).run()
    finally:
        db.close()


if __name__ == "__main__":
    sys.exit(main())
