"""hivectl's command line: every subcommand, its arguments, and the socket request it makes."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


class UsageError(Exception):
    """Exit code 2: the command line itself is wrong."""


@dataclass(frozen=True)
class Sub:
    name: str
    help: str
    request: Callable[[argparse.Namespace], dict[str, Any]] | None
    """The admin-socket request this subcommand makes; None for local ones (serve)."""


def _name(ns: argparse.Namespace) -> dict[str, Any]:
    return {"name": ns.name}


SUBCOMMANDS: list[Sub] = [
    Sub("serve", "run the coordinator in the foreground", None),
    Sub("list", "every agent: state, model, turn, inbox", lambda ns: {"cmd": "list"}),
    Sub(
        "status",
        "one agent's row (or all)",
        lambda ns: {"cmd": "agent_status", **({"name": ns.name} if ns.name else {})},
    ),
    Sub(
        "spawn",
        "create an agent now (operator privilege: no approval)",
        lambda ns: {"cmd": "spawn", **_name(ns)},
    ),
    Sub(
        "send",
        "send a message to an agent as the operator",
        lambda ns: {"cmd": "send", "to": ns.name, "body": ns.text},
    ),
    Sub(
        "kick", "wake an agent's harness to read its inbox", lambda ns: {"cmd": "kick", **_name(ns)}
    ),
]


def _common(defaults: bool) -> argparse.ArgumentParser:
    # Subparsers must not reset what was given before the subcommand: SUPPRESS there.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--json",
        action="store_true",
        default=False if defaults else argparse.SUPPRESS,
        help="machine-readable output",
    )
    common.add_argument(
        "--socket",
        metavar="PATH",
        default=None if defaults else argparse.SUPPRESS,
        help="the admin socket (default: $HIVE_RUNTIME_DIR/host.sock)",
    )
    return common


def build() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hivectl",
        description="Operate a hyperhive: agents, messages, approvals. Exit 0 on success, "
        "1 when the hive refuses, 2 on usage errors.",
        parents=[_common(True)],
    )
    subs = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for sub in SUBCOMMANDS:
        sp = subs.add_parser(
            sub.name, help=sub.help, description=sub.help, parents=[_common(False)]
        )
        if sub.name == "status":
            sp.add_argument("name", nargs="?", help="agent name")
        elif sub.name in ("spawn", "kick"):
            sp.add_argument("name", help="agent name")
        elif sub.name == "send":
            sp.add_argument("name", help="recipient agent")
            sp.add_argument("text", help="message body")
    return parser


def find(name: str) -> Sub:
    for sub in SUBCOMMANDS:
        if sub.name == name:
            return sub
    raise UsageError(f"unknown command {name!r}")
