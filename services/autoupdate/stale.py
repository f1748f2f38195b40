"""Which containers are stale: built from a platform rev other than the installed one."""

from __future__ import annotations

from typing import Any

from services.hive.paths import Paths
from services.hive.platform import read_marker

REBUILDABLE = ("running", "stopped", "failed")


def stale_agents(paths: Paths, rows: list[dict[str, Any]], rev: str) -> list[str]:
    """Agents (manager first) whose marker differs from `rev`."""
    stale = [
        str(r["name"])
        for r in rows
        if r.get("state") in REBUILDABLE and read_marker(paths.rev_marker(str(r["name"]))) != rev
    ]
    return sorted(stale, key=lambda n: (n != "hm1nd", n))
