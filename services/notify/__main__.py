"""Entry point of hive-notify: settings, the database, the channels, the link maker; run."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from ..hive import log as hlog
from ..hive.channels import channels
from ..hive.db import open_db
from .links import LinkMaker
from .service import NotifyService
from .settings import NotifySettings, SettingsError


def main(argv: list[str] | None = None) -> int:
    hlog.set_identifier("hive-notify")
    try:
        settings = NotifySettings.from_env()
        _wait_for(settings.paths.db)
        db = open_db(settings.paths.db, create=False)
    except (SettingsError, OSError, ValueError) as e:
        hlog.log(f"hive-notify cannot start: {e}", kind="notification", priority=hlog.ERR)
        print(f"hive-notify: cannot start: {e}", file=sys.stderr, flush=True)
        return 1
    links = LinkMaker(settings.paths.admin_socket) if settings.public_url else None
    try:
        return NotifyService(settings, channels(list(settings.urls)), links).run()
    finally:
        db.close()


def _wait_for(db: Path, seconds: float = 30.0) -> None:
    """The coordinator creates the database; wait for it rather than make one of our own."""
    deadline = time.monotonic() + seconds
    while not db.exists():
        if time.monotonic() >= deadline:
            raise OSError(
                f"the hive database {db} does not exist: start the coordinator first "
                "(systemctl start hive-coordinator)"
            )
        time.sleep(0.2)


if __name__ == "__main__":
    sys.exit(main())
