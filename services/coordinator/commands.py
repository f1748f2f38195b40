"""The socket commands: which socket may run each one, and what each does.

Every field is read through the typed getters of `services.hive.protocol`; the caller's
identity comes from the socket (`Caller`), never from the request.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from services.coordinator import agents
from services.coordinator.broker import MAX_WAIT_SECONDS
from services.coordinator.connection import Connection, Reply
from services.hive import protocol as p
from services.hive.db import TurnState, now
from services.hive.events import Spawned
from services.hive.inbox import message_dict
from services.hive.log import log
from services.hive.names import OPERATOR, validate_agent_name

if TYPE_CHECKING:
    from services.coordinator.service import Coordinator

ADMIN = "admin"
MANAGER_ROLE = "manager"
AGENT = "agent"
AGENT_ROLES = frozenset({MANAGER_ROLE, AGENT})
ALL_ROLES = frozenset({ADMIN, MANAGER_ROLE, AGENT})

MAX_BODY = 256 * 1024
TURN_STATES = ("idle", "thinking", "tool", "waiting", "error", "needs_login")

Result = dict[str, Any] | Reply
HandlerFn = Callable[["Coordinator", Connection, dict[str, Any]], Result | Awaitable[Result]]


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
            f"unknown command {shown!r}: see PROTOCOL.md for this socket's commands"
        )
    if role not in cmd.roles:
        where = {
            frozenset({ADMIN}): "the admin socket",
            frozenset({MANAGER_ROLE}): "the manager's socket",
        }.get(cmd.roles, "an agent's socket")
        raise p.Refusal(f"command {name!r} is only available on {where}")
    return cmd


async def run(hive: Coordinator, conn: Connection, req: dict[str, Any]) -> Reply:
    """Look up and run one decoded request; refusals become `ok: false` replies."""
    cmd = lookup(req["cmd"], conn.caller.role)
    result = cmd.handler(hive, conn, req)
    if inspect.isawaitable(result):
        result = await result
    if isinstance(result, Reply):
        return result
    return Reply(p.ok(**result))


def _existing_agent(req: dict[str, Any], field: str = "name") -> str:
    name = validate_agent_name(p.get_str(req, field, max_len=64))
    agents.get(name)
    return str(name)


# every socket --------------------------------------------------------------------------


@command("whoami", ALL_ROLES, "who this socket says you are")
def whoami(hive: Coordinator, conn: Connection, req: dict[str, Any]) -> Result:
    return {"name": conn.caller.name, "role": conn.caller.role}


@command("send", ALL_ROLES, "send {to, body}: a message to an agent (operator on the admin socket)")
def send(hive: Coordinator, conn: Connection, req: dict[str, Any]) -> Result:
    to = p.get_str(req, "to", max_len=64)
    body = p.get_str(req, "body", max_len=MAX_BODY)
    if to == OPERATOR and conn.caller.role != ADMIN:
        recipient = OPERATOR
    else:
        recipient = _existing_agent(req, "to")
    msg = hive.broker.send(conn.caller.name, recipient, body)
    log(
        f"message #{msg.id} from {conn.caller.name} to {recipient}",
        kind="message_sent",
        agent=recipient,
        sender=conn.caller.name,
        message_no=msg.id,
        priority=7,
    )
    return {"id": msg.id}


# agent sockets -------------------------------------------------------------------------


@command("recv", AGENT_ROLES, "recv {wait_seconds ≤ 180}: the next inbox message, waiting for one")
async def recv(hive: Coordinator, conn: Connection, req: dict[str, Any]) -> Result:
    wait = p.get_number(req, "wait_seconds", 0, minimum=0, maximum=MAX_WAIT_SECONDS)
    got = await hive.broker.recv(conn, conn.caller.name, float(wait))
    if got.message is None:
        return {"message": None, **({"kicked": True} if got.kicked else {})}
    msg = got.message
    return Reply(p.ok(message=message_dict(msg)), undo=lambda: hive.broker.unclaim(msg))


@command("get_model", AGENT_ROLES, "the model this agent's next turn uses (null = its default)")
def get_model(hive: Coordinator, conn: Connection, req: dict[str, Any]) -> Result:
    return {"model": agents.get(conn.caller.name).model}


@command("set_turn_state", AGENT_ROLES, "set_turn_state {state, ...}: what the harness is doing")
def set_turn_state(hive: Coordinator, conn: Connection, req: dict[str, Any]) -> Result:
    state = p.get_str(req, "state", max_len=32)
    if state not in TURN_STATES:
        raise p.ProtocolError(f"field 'state' must be one of {', '.join(TURN_STATES)}")
    fields: dict[str, Any] = {
        "state": state,
        "tool": p.get_str(req, "tool", None, max_len=200),
        "detail": p.get_str(req, "detail", None, max_len=4000, allow_empty=True),
        "turn_started_at": p.get_number(req, "started_at", None, minimum=0),
        "turn_ended_at": p.get_number(req, "ended_at", None, minimum=0),
        "input_tokens": p.get_int(req, "input_tokens", 0, minimum=0),
        "output_tokens": p.get_int(req, "output_tokens", 0, minimum=0),
        "cached_tokens": p.get_int(req, "cached_tokens", 0, minimum=0),
        "cost_usd": p.get_number(req, "cost_usd", 0.0, minimum=0),
        "updated_at": now(),
    }
    TurnState.insert(agent=conn.caller.name, **fields).on_conflict_replace().execute()
    hive.changed()
    return {}


# admin socket --------------------------------------------------------------------------


@command("list", frozenset({ADMIN}), "every agent with its state, model, turn and inbox")
def list_agents(hive: Coordinator, conn: Connection, req: dict[str, Any]) -> Result:
    return {"agents": agents.rows()}


@command("agent_status", frozenset({ADMIN}), "agent_status {name?}: one agent's row (or all)")
def agent_status(hive: Coordinator, conn: Connection, req: dict[str, Any]) -> Result:
    if req.get("name") is None:
        return {"agents": agents.rows()}
    return {"agents": agents.rows(_existing_agent(req))}


@command("kick", frozenset({ADMIN}), "kick {name}: wake the agent's harness to read its inbox")
def kick(hive: Coordinator, conn: Connection, req: dict[str, Any]) -> Result:
    name = _existing_agent(req)
    return {"woken": hive.broker.kick(name), "inbox": hive.broker.backlog(name)}


@command("spawn", frozenset({ADMIN}), "spawn {name}: create an agent now (operator, no approval)")
async def spawn(hive: Coordinator, conn: Connection, req: dict[str, Any]) -> Result:
    name = validate_agent_name(p.get_str(req, "name", max_len=64), allow_manager=False)
    agents.create(name, state="spawning")
    try:
        hive.backend.create(name)
        await hive.serve_agent(name)
    except OSError as e:
        note = f"could not create {name}: {e}"
        agents.set_state(name, "failed", note)
        hive.notify(Spawned(agent=name, ok=False, note=note))
        raise p.Refusal(note) from None
    agents.set_state(name, "stopped")
    log(f"agent {name} created by the operator", kind="agent_created", agent=name)
    hive.notify(Spawned(agent=name, ok=True, note=None))
    return {"agent": agents.rows(name)[0]}
