"""The command table and its dispatcher: which socket may run each command, who asked, and
how a result becomes a reply. Handlers live in `commands` and `signin_commands`; they get a
`Hive` (what a handler may use), never the service itself.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ..hive import log as hlog
from ..hive import protocol as p
from ..hive.names import InvalidName, validate_agent_name
from ..hive.vocab import Code, Role
from . import history
from .connection import Connection, Reply
from .context import Hive

ADMIN = Role.ADMIN
MANAGER_ROLE = Role.MANAGER
AGENT = Role.AGENT
AGENT_ROLES = frozenset({MANAGER_ROLE, AGENT})
ALL_ROLES = frozenset({ADMIN, MANAGER_ROLE, AGENT})
OPERATOR_ONLY = frozenset({ADMIN})
OPERATOR_AND_MANAGER = frozenset({ADMIN, MANAGER_ROLE})


Result = dict[str, Any] | Reply
HandlerFn = Callable[[Hive, Connection, dict[str, Any]], Result | Awaitable[Result]]


@dataclass(frozen=True)
class Command:
    name: str
    roles: frozenset[str]
    summary: str
    handler: HandlerFn


COMMANDS: dict[str, Command] = {}


def command(name: str, roles: frozenset[str], summary: str) -> Callable[[HandlerFn], HandlerFn]:
    def register(fn: HandlerFn) -> HandlerFn:
        COMMANDS[name] = Command(name, roles, summary, fn)
        return fn

    return register


def lookup(name: str, role: str) -> Command:
    cmd = COMMANDS.get(name)
    if cmd is None:
        shown = name if len(name) <= 40 else name[:40] + "…"
        raise p.ProtocolError(
            f"unknown command {shown!r}: see docs/sockets.md for this socket's commands"
        )
    if role not in cmd.roles:
        raise p.Refusal(
            f"command {name!r} is only available on {sockets_of(cmd.roles)}", code=Code.FORBIDDEN
        )
    return cmd


def sockets_of(roles: frozenset[str]) -> str:
    """The sockets a command is for, as a refusal names them."""
    if AGENT in roles:
        return "agent sockets (the manager's included)"
    names = [
        where
        for role, where in ((ADMIN, "the admin socket"), (MANAGER_ROLE, "the manager's socket"))
        if role in roles
    ]
    return " and ".join(names)


MANAGER_LIFECYCLE = frozenset({"start", "restart", "kill"})
"""What the manager may do to a sub-agent: recorded in the audit trail like the operator's."""

READ_ONLY = frozenset(
    {
        "whoami",
        "list",
        "agent_status",
        "pending",
        "questions",
        "inbox",
        "watch",
        "sessions",
        "session_seen",
        "history",
        "waiting",
        "budget",
    }
)
"""Admin commands that change nothing; every other one is recorded with who asked."""


def operator_identity(conn: Connection, req: dict[str, Any]) -> str:
    """Who is deciding on the admin socket: the `actor` the client names, and its uid."""
    actor = p.get_str(req, "actor", "admin socket", max_bytes=200)
    return f"{actor}, {conn.peer_user()}"


async def run(hive: Hive, conn: Connection, req: dict[str, Any]) -> Reply:
    """Look up and run one decoded request; refusals become `ok: false` replies."""
    cmd = lookup(req["cmd"], conn.caller.role)
    if conn.caller.role == ADMIN and cmd.name not in READ_ONLY:
        who = operator_identity(conn, req)
        hlog.log(
            f"operator {cmd.name} by {who}",
            kind="operator_action",
            agent=_named_agent(req),
            operator=who,
        )
    audited = cmd.name in history.ACTIONS and (
        conn.caller.role == ADMIN or cmd.name in MANAGER_LIFECYCLE
    )
    actor = (
        operator_identity(conn, req)
        if conn.caller.role == ADMIN
        else f"{conn.caller.name} ({conn.caller.role} socket)"
    )
    try:
        result = cmd.handler(hive, conn, req)
        if inspect.isawaitable(result):
            result = await result
    except p.Refusal as e:
        if audited:
            history.record(cmd.name, actor, req, f"refused: {e}")
            hive.changed("history")
        raise
    body = result.body if isinstance(result, Reply) else p.ok(**result)
    if audited:
        history.record(cmd.name, actor, req, history.outcome_of(body), body)
        hive.changed("history")
    return result if isinstance(result, Reply) else Reply(body)


def _named_agent(req: dict[str, Any]) -> str | None:
    """The agent a request names, for the journal's HIVE_AGENT= (None when it names none)."""
    for key in ("name", "to", "agent"):
        value = req.get(key)
        if isinstance(value, str):
            try:
                return validate_agent_name(value)
            except InvalidName:
                return None
    return None


def loaded() -> dict[str, Command]:
    """The whole table: the handler modules register their commands as they are imported."""
    from . import budget_commands, commands, link_commands, signin_commands  # noqa: F401

    return COMMANDS
