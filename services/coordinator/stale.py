"""What an apply-commit approval's diff was computed against, and whether that still holds.

An approval records the applied repo's HEAD and a hash of the applied config bytes when it
is requested. Once the applied config differs from those bytes (another approval was
applied first), the diff the operator would read no longer shows what applying it does:
such an approval is stale and is never applied. Reads only the coordinator's applied repo.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from . import repos

ABSENT = "absent"
"""The hash recorded when there was no applied config at all."""


@dataclass(frozen=True)
class Base:
    """The applied state an approval's diff was computed against."""

    commit: str | None
    hash: str
    config: bytes | None


def config_hash(blob: bytes | None) -> str:
    return ABSENT if blob is None else hashlib.sha256(blob).hexdigest()


def base_of(applied: Path) -> Base:
    """The applied repo's HEAD and config, as a diff computed now would see them."""
    config = repos.applied_config(applied)
    return Base(repos.applied_head(applied), config_hash(config), config)


def moved(base_hash: str | None, applied: Path) -> bool:
    """Whether the applied config is no longer what `base_hash` recorded (unknown: moved)."""
    return base_hash is None or config_hash(repos.applied_config(applied)) != base_hash


def why_stale(agent: str, base_commit: str | None, applied: Path) -> str:
    """The sentence the manager and the operator read about a stale approval."""
    now = repos.applied_head(applied)
    if base_commit is None:
        was = " (it does not record what its diff was computed against)"
    else:
        was = f" (its diff was computed against applied commit {base_commit[:12]}" + (
            f", the applied repo is now at {now[:12]})" if now else ")"
        )
    return (
        f"the applied config of {agent} changed since this approval was requested{was}: its "
        "diff no longer shows what applying it would do; request it again"
    )
