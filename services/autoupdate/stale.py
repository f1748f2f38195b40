"""Which containers are stale: built from a platform rev other than the installed one."""

from __future__ import annotations

from typing import Any

from ..hive import platform
from ..hive.paths import Paths


def stale_agents(paths: Paths, rows: list[dict[str, Any]], rev: str) -> list[str]:
    """Agents (manager first) whose marker differs from `rev`."""
    markers = {str(r["name"]): platform.read_marker(paths.rev_marker(str(r["name"]))) for r in rows}
    return platform.stale_agents(markers, rows, rev)
