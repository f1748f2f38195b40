"""Agent names: the one check every name passes before any path or row is built from it.

Never build a path from a name that did not come back from `validate_agent_name`.
"""

from __future__ import annotations

import re

from .protocol import Refusal
from .vocab import Code

MANAGER = "hm1nd"
"""The manager agent, the config gatekeeper; created by the coordinator, never spawned."""

SYSTEM = "system"
"""Sender of helper events."""

OPERATOR = "operator"
"""Sender of messages typed by the human operator (CLI or dashboard)."""

_NAME = re.compile(r"[a-z][a-z0-9-]{0,30}")


class InvalidName(Refusal, ValueError):
    """A name that must not become an agent, a path or a row."""

    code = Code.INVALID


def validate_agent_name(name: object, *, allow_manager: bool = True) -> str:
    """Return `name` if it is a valid agent name, else raise `InvalidName` with a clear sentence."""
    if not isinstance(name, str):
        raise InvalidName("agent name must be a string")
    shown = name if len(name) <= 40 else name[:40] + "…"
    if not _NAME.fullmatch(name):
        raise InvalidName(
            f"agent name {shown!r} is invalid: use 1 to 31 of a-z, 0-9 and '-', "
            "starting with a letter"
        )
    if name.endswith("-") or "--" in name:
        # '-' only separates words: 'a-' and 'a--b' are typos of other names waiting to be
        # confused in unit and machine names (hive-agent@a--b, h-a--b).
        raise InvalidName(
            f"agent name {shown!r} is invalid: '-' must sit between letters or digits "
            "(no trailing '-', no '--')"
        )
    if name == MANAGER and not allow_manager:
        raise InvalidName(f"agent name {MANAGER!r} is reserved for the manager")
    if name in (SYSTEM, OPERATOR):
        raise InvalidName(f"agent name {name!r} is reserved for the hive itself")
    return name


def machine_name(name: str) -> str:
    """The machined name of an agent's container: `h-<name>`, the manager as `hm1nd`."""
    return MANAGER if name == MANAGER else f"h-{validate_agent_name(name)}"
