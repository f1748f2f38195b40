"""What a benchmark's table header says about the run: the load average and the commit.

Only reads the host (/proc, git); never changes anything.
"""

from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path


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
