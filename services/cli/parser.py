"""hivectl's command line: every subcommand, its arguments, and the socket request it makes."""

from __future__ import annotations

import argparse
import getpass
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..hive.vocab import Period

Request = Callable[[argparse.Namespace], dict[str, Any]]


@dataclass(frozen=True)
class Sub:
    name: str
    help: str
    request: Request | None
    """The admin-socket request this subcommand makes; None for local ones."""
    args: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


NAME = ("name", {"help": "agent name"})
ID = ("id", {"type": int, "help": "approval or question id"})


def _verb(cmd: str) -> Request:
    return lambda ns: {"cmd": cmd, "name": ns.name}


def _model(ns: argparse.Namespace) -> dict[str, Any]:
    if ns.clear:
        return {"cmd": "set_model", "name": ns.name, "model": None}
    if ns.model is None:
        return {"cmd": "agent_status", "name": ns.name}
    return {"cmd": "set_model", "name": ns.name, "model": ns.model}


class UsageError(Exception):
    """A subcommand that cannot make its request (exit 2); the message says why."""


def _cap(text: str) -> float | None:
    """A cap on the command line: US dollars, or `config` to drop the operator's."""
    if text in ("config", "default"):
        return None
    try:
        value = float(text.removeprefix("$"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of US dollars (or 'config' to drop your cap)"
        ) from None
    if not 0 <= value <= 1e9 or value != value:
        raise argparse.ArgumentTypeError(f"{text!r} must be from 0 to 1000000000 US dollars")
    return value


PERIODS = tuple(str(p) for p in Period)


def _budget(ns: argparse.Namespace) -> dict[str, Any]:
    """Show the budget, or set the operator's caps and resets."""
    req: dict[str, Any] = {"cmd": "set_budget", "name": ns.name}
    for period in PERIODS:
        value = getattr(ns, period)
        if value is not _UNSET:
            req[f"{period}_usd"] = value
    if ns.reset:
        req["reset"] = list(PERIODS) if "all" in ns.reset else ns.reset
    if len(req) == 2:
        return {"cmd": "budget", "name": ns.name}
    return req


_UNSET = object()


def _passwd(ns: argparse.Namespace) -> dict[str, Any]:
    """The password from the terminal (asked twice) or from stdin, or null for --clear."""
    if ns.clear:
        return {"cmd": "set_password", "password": None}
    if ns.stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("new dashboard password: ")
        if getpass.getpass("again: ") != password:
            raise UsageError("the two passwords differ: nothing was changed")
    if not password:
        raise UsageError("an empty password: nothing was changed (--clear removes it)")
    return {"cmd": "set_password", "password": password}


def _since(text: str) -> float:
    """`--since`: `30m`, `2h`, `3d` ago, an ISO date or time (`2026-11-29`,
    `2026-11-29T08:00`), or epoch seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    value = text.strip()
    if value[:-1].replace(".", "", 1).isdigit() and value[-1:] in units:
        return time.time() - float(value[:-1]) * units[value[-1]]
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a time: use 30m, 2h, 3d, 2026-11-29 or 2026-11-29T08:00"
        ) from None


def _history(ns: argparse.Namespace) -> dict[str, Any]:
    req: dict[str, Any] = {"cmd": "history"}
    if ns.agent:
        req["agent"] = ns.agent
    if ns.since is not None:
        req["since"] = ns.since
    return req


SUBCOMMANDS: list[Sub] = [
    Sub("serve", "run the coordinator in the foreground", None),
    Sub("list", "every agent: state, model, turn, inbox", lambda ns: {"cmd": "list"}),
    Sub(
        "status",
        "one agent's row (or all)",
        lambda ns: {"cmd": "agent_status", **({"name": ns.name} if ns.name else {})},
        [("name", {"nargs": "?", "help": "agent name"})],
    ),
    Sub(
        "pending",
        "approvals waiting for the operator, with their diffs",
        lambda ns: {"cmd": "pending", "all": ns.all},
        [("--all", {"action": "store_true", "help": "include resolved approvals"})],
    ),
    Sub(
        "approve",
        "apply exactly what an approval shows",
        lambda ns: {"cmd": "approve", "id": ns.id},
        [ID],
    ),
    Sub(
        "deny",
        "refuse an approval",
        lambda ns: {"cmd": "deny", "id": ns.id, "note": ns.note},
        [ID, ("--note", {"help": "why, for the manager"})],
    ),
    Sub(
        "questions",
        "operator questions waiting for an answer",
        lambda ns: {"cmd": "questions", "all": ns.all},
        [("--all", {"action": "store_true", "help": "include resolved questions"})],
    ),
    Sub(
        "answer",
        "answer an operator question (several TEXTs for a multi-choice question)",
        lambda ns: {
            "cmd": "answer_question",
            "id": ns.id,
            "answer": ns.text if len(ns.text) > 1 else ns.text[0],
        },
        [ID, ("text", {"nargs": "+", "help": "the answer"})],
    ),
    Sub(
        "cancel-question",
        "resolve a question as [cancelled]",
        lambda ns: {"cmd": "cancel_question", "id": ns.id},
        [ID],
    ),
    Sub("spawn", "create an agent now (operator privilege: no approval)", _verb("spawn"), [NAME]),
    Sub("start", "start an agent", _verb("start"), [NAME]),
    Sub("stop", "stop an agent", _verb("stop"), [NAME]),
    Sub("restart", "restart an agent", _verb("restart"), [NAME]),
    Sub("kill", "kill an agent at once", _verb("kill"), [NAME]),
    Sub(
        "destroy",
        "remove an agent's container and applied config (keeps its proposed repo and state)",
        lambda ns: {"cmd": "destroy", "name": ns.name, "purge": ns.purge},
        [NAME, ("--purge", {"action": "store_true", "help": "also delete config and state"})],
    ),
    Sub("rebuild", "regenerate an agent from its applied config", _verb("rebuild"), [NAME]),
    Sub(
        "send",
        "send a message to an agent as the operator",
        lambda ns: {"cmd": "send", "to": ns.name, "body": ns.text},
        [("name", {"help": "recipient agent"}), ("text", {"help": "message body"})],
    ),
    Sub("kick", "wake an agent's harness to read its inbox", _verb("kick"), [NAME]),
    Sub(
        "inbox",
        "an agent's undelivered messages: queued, leased or set aside",
        lambda ns: {"cmd": "inbox", "name": ns.name, "all": ns.all},
        [NAME, ("--all", {"action": "store_true", "help": "also delivered and dropped ones"})],
    ),
    Sub(
        "drop",
        "remove an undelivered message from its inbox (e.g. one set aside)",
        lambda ns: {"cmd": "drop", "id": ns.id, "note": ns.note},
        [
            ("id", {"type": int, "help": "message id (see hivectl inbox NAME)"}),
            ("--note", {"help": "why, kept with the message"}),
        ],
    ),
    Sub(
        "model",
        "show an agent's model, or override it",
        _model,
        [
            NAME,
            ("model", {"nargs": "?", "help": "the model to use from the next turn on"}),
            ("--clear", {"action": "store_true", "help": "drop the override"}),
        ],
    ),
    Sub("cancel", "cancel the agent's running turn", _verb("cancel_turn"), [NAME]),
    Sub(
        "budget",
        "show an agent's spending caps and spend, or set your caps and reset counts",
        _budget,
        [
            NAME,
            *[
                (
                    f"--{period}",
                    {
                        "type": _cap,
                        "default": _UNSET,
                        "metavar": "USD",
                        "help": f"your {period} cap in US dollars ('config': the config's again)",
                    },
                )
                for period in PERIODS
            ],
            (
                "--reset",
                {
                    "action": "append",
                    "choices": (*PERIODS, "all"),
                    "help": "count this period's spend from now on (repeat, or 'all')",
                },
            ),
        ],
    ),
    Sub(
        "login",
        "print a one-time link that signs a browser in to the dashboard (valid 120 s)",
        lambda ns: {"cmd": "login_link"},
    ),
    Sub(
        "passwd",
        "set the dashboard password for remote sign-in (asked twice), or --clear it",
        _passwd,
        [
            ("--clear", {"action": "store_true", "help": "remove the password"}),
            ("--stdin", {"action": "store_true", "help": "read it from standard input"}),
        ],
    ),
    Sub(
        "logout-all",
        "end every dashboard session and unused sign-in link",
        lambda ns: {"cmd": "logout_all"},
    ),
    Sub(
        "notify-test",
        "send a test notification to every URL of HIVE_NOTIFY_URLS and say which worked",
        None,
        [
            (
                "--env-file",
                {
                    "default": "/etc/hyperhive/hive.env",
                    "help": "where to read HIVE_NOTIFY_URLS when it is not in the environment",
                },
            )
        ],
    ),
    Sub(
        "waiting",
        "everything that waits on you: approvals, questions, crashed agents",
        lambda ns: {"cmd": "waiting"},
    ),
    Sub(
        "history",
        "the audit trail: every decision and lifecycle action, newest first",
        _history,
        [
            ("--agent", {"metavar": "NAME", "help": "only what was done to this agent"}),
            ("--since", {"type": _since, "metavar": "T", "help": "30m, 2h, 3d, a date or a time"}),
        ],
    ),
    Sub(
        "tour",
        "a guided tour of approvals and questions, playing the manager's part (no API key needed)",
        None,
        [
            (
                "--step-timeout",
                {"type": float, "default": 900.0, "help": "seconds to wait for each step"},
            )
        ],
    ),
    Sub(
        "install",
        "install units, tmpfiles, sysusers and settings on this systemd host, and start the hive",
        None,
        [
            ("--prefix", {"help": "make a dedicated venv here and point the units at it"}),
            ("--root", {"default": "/", "help": "write files under this root only (packaging)"}),
            ("--no-start", {"action": "store_true", "help": "enable, but do not start"}),
            (
                "--set",
                {
                    "action": "append",
                    "default": [],
                    "metavar": "KEY=VALUE",
                    "help": "a setting for /etc/hyperhive/hive.env (repeatable)",
                },
            ),
        ],
    ),
    Sub(
        "logs",
        "the agent's journal (journalctl HIVE_AGENT=NAME)",
        None,
        [NAME, ("-f", {"dest": "follow", "action": "store_true", "help": "follow"})],
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
        for arg, kwargs in sub.args:
            sp.add_argument(arg, **kwargs)
    return parser


def find(name: str) -> Sub:
    return next(sub for sub in SUBCOMMANDS if sub.name == name)
