"""What a benchmark says about its own run: when, at which commit, on what load.

Reads only (git, /proc/loadavg); a table printed without it cannot be traced to a run.
"""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def commit() -> str:
    """The checkout's short commit, and whether tracked files differ from it."""

    def git(*args: str) -> str:
        out = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)
        return out.stdout.strip()

    dirty = git("status", "--porcelain", "--untracked-files=no")
    return (git("rev-parse", "--short", "HEAD") or "unknown") + (
        " + uncommitted changes" if dirty else ""
    )


def load() -> str:
    """The 1, 5 and 15 minute load averages."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def now() -> str:
    return f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
