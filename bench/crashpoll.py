"""The crash watcher's peer for bench/crashwatch.py: a loop polling `machinectl list`.

It runs as hive-crashwatch.service itself (a drop-in replaces only ExecStart), and feeds
what disappeared into the watcher's own decision and durable write, so it differs from
the real watcher only in how it notices. Never imported by the hive.
"""

from __future__ import annotations

import signal
import subprocess
import time
import traceback
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hyperhive.crashwatch.units import UnitStatus
    from hyperhive.crashwatch.watcher import CrashWatcher


class PollingHost:
    """The watcher's `Host`, with machined's list read from `machinectl list`; units are
    read over one open bus connection, as the real watcher does."""

    def __init__(self) -> None:
        self.bus: Any = None

    def machines(self) -> set[str]:
        out = subprocess.run(
            ["machinectl", "list", "--no-legend", "--no-pager"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return {line.split()[0] for line in out.splitlines() if line.strip()}

    def unit_status(self, unit: str) -> UnitStatus:
        from hyperhive.crashwatch.units import read_unit
        from pystemd.dbuslib import DBus

        if self.bus is None:
            self.bus = DBus()
            self.bus.open()
        try:
            return read_unit(unit, self.bus)
        except Exception:
            self.close()  # a dropped connection: the next read opens a new one
            raise

    def close(self) -> None:
        if self.bus is not None:
            self.bus.close()
            self.bus = None

    def journal_tail(self, unit: str, invocation_id: str) -> list[str]:
        from hyperhive.crashwatch.journal import last_lines

        return last_lines(unit, invocation_id)


def status(interval: float, watcher: CrashWatcher) -> str:
    """STATUS= in the real watcher's shape: what it watches, in parentheses."""
    up = watcher.watching()
    return f"polling `machinectl list` every {interval:g} s ({len(up)}: {', '.join(up)})"


def run(interval: float) -> int:
    """Poll every `interval` seconds until SIGTERM; READY=1 after the first poll."""
    from hyperhive.crashwatch.watcher import CrashWatcher
    from hyperhive.hive import sd
    from hyperhive.hive.db import open_db
    from hyperhive.hive.paths import Paths

    paths = Paths.from_env()
    db = open_db(paths.db)
    host = PollingHost()
    watcher = CrashWatcher(host, paths.doorbell)
    stop = False

    def on_term(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    watcher.reconcile(host.machines())
    sd.ready(status(interval, watcher))
    next_tick = time.monotonic()
    while not stop:
        try:
            watcher.reconcile(host.machines())
        except Exception:  # as the real service does: log, keep going, judge again next tick
            traceback.print_exc()
        sd.notify(f"WATCHDOG=1\nSTATUS={status(interval, watcher)}")
        next_tick += interval
        delay = next_tick - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            next_tick = time.monotonic()
    host.close()
    db.close()
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(run(float(sys.argv[1])))
