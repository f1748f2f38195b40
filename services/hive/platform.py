"""The platform rev: a digest of the installed hyperhive, which changes when it is upgraded.

The auto-updater compares it with each container's marker (`applied/.<name>.hyperhive-rev`).
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .vocab import AgentState

PACKAGE = __name__.split(".")[0]
"""The import package's name (`hyperhive`), for `python -m {PACKAGE}.agent` and the like."""
PACKAGE_DIR = Path(__file__).resolve().parent.parent
"""Where the package's source lives (the `services/` folder of a checkout)."""

_SUFFIXES = (".py", ".md", ".tpl", ".css", ".js", ".toml", ".service", ".socket", ".target")


def platform_paths() -> list[Path]:
    """Where the installed hyperhive lives: its environment and, if apart, its source."""
    prefix = Path(sys.prefix).resolve()
    source = PACKAGE_DIR.parent
    paths = [prefix]
    if not source.is_relative_to(prefix) and not str(source).startswith("/usr"):
        paths.append(source)
    return paths


def platform_root() -> Path:
    """What is digested: the installed `services` package, or `HIVE_PLATFORM_ROOT`."""
    override = os.environ.get("HIVE_PLATFORM_ROOT")
    return Path(override) if override else PACKAGE_DIR


def platform_rev(root: Path | None = None) -> str:
    """sha256 over the relative paths and contents of the platform's source files."""
    base = root or platform_root()
    h = hashlib.sha256()
    for path in sorted(p for p in base.rglob("*") if p.is_file() and p.suffix in _SUFFIXES):
        if "__pycache__" in path.parts:
            continue
        h.update(str(path.relative_to(base)).encode() + b"\0")
        h.update(path.read_bytes() + b"\0")
    return h.hexdigest()


_cache: tuple[float, str] | None = None


def current_rev(max_age: float = 2.0) -> str:
    """`platform_rev()`, recomputed at most every `max_age` seconds (for listings)."""
    global _cache
    stamp = time.monotonic()
    if _cache is None or stamp - _cache[0] > max_age:
        _cache = (stamp, platform_rev())
    return _cache[1]


def read_marker(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None


def write_marker(path: Path, rev: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(rev + "\n")
    os.replace(tmp, path)


REBUILDABLE = tuple(s for s in AgentState if s.rebuildable)
"""Agent states a rebuild applies to (not spawning, not gone)."""


def stale_agents(
    markers: Mapping[str, str | None], rows: Iterable[Mapping[str, Any]], rev: str
) -> list[str]:
    """Agents (the manager first) in a rebuildable state whose marker differs from `rev`;
    `markers` maps each agent to the rev its container was last built from."""
    stale = [
        str(r["name"])
        for r in rows
        if r.get("state") in REBUILDABLE and markers.get(str(r["name"])) != rev
    ]
    return sorted(stale, key=lambda n: (n != "hm1nd", n))
