"""What benchmarks read off the host: the load average and the commit for a table's header,
and one value from the hive's database.

Only reads (/proc, git, SQLite opened read-only); never changes anything.
"""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
from pathlib import Path
from typing import Any


def loadavg() -> str:
    """The 1, 5 and 15-minute load averages, as /proc/loadavg has them."""
    with contextlib.suppress(OSError):
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return "?"


def source_rev(source: Path) -> str:
    """Which code ran: the commit, and whether services/ had uncommitted changes."""
    try:
        rev = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(source), "status", "--porcelain", "--", "services"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return f"{source} (not a git checkout)"
    return f"commit {rev}" + (" + uncommitted changes in services/" if dirty else "")


def db_value(db: Path, sql: str, *args: object) -> Any:
    """The first column of the first row of `sql` on the database at `db`, read-only."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        row = conn.execute(sql, args).fetchone()
        return None if row is None else row[0]
    finally:
        conn.close()
