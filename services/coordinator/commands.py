"""The socket commands: which socket may run each one, and what each does.

Every field is read through the typed getters of `services.hive.protocol`; the caller's
identity comes from the socket (`Caller`), never from the request.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ..hive import protocol as p
from ..hive.agentconfig import valid_model
from ..hive.db import TurnState, now
from ..hive.names import MANAGER, OPERATOR, validate_agent_name
from ..hive.vocab import AgentState, Code, TurnPhase
from . import agents, approvals, history, inboxes, questions, waiting
from .broker import MAX_WAIT_SECONDS
from .connection import Connection, Reply
from .context import Hive
from .registry import (
    ADMIN,
    AGENT_ROLES,
    ALL_ROLES,
    MANAGER_ROLE,
    OPERATOR_AND_MANAGER,
    OPERATOR_ONLY,
    Result,
    command,
    operator_identity,
)

MAX_TOKENS = 2**62
"""Token counts above this would not fit SQLite's 64-bit INTEGER."""
TURN_STATES = tuple(TurnPhase)


def _existing_agent(req: dict[str, Any], field: str = "name") -> str:
    return agents.require(validate_agent_name(p.get_str(req, field, max_bytes=64)))


# every socket --------------------------------------------------------------------------


@command("whoami", ALL_ROLES, "who this socket says you are")
def whoami(hive: Hive, conn: Connection, req: dict[str, Any]) -> Result:
    return {"name": conn.caller.name, "role": conn.caller.role}


@command("send", ALL_ROLES, "send {to, body}: a message to an agent (operator on the admin socket)")
def send(hive: Hive, conn: Connection, req: dict[str, Any]) -> Result:
    to = p.get_str(req, "to", max_bytes=64)
    body = p.get_body(req)
    if to == OPERATOR and conn.caller.role != ADMIN:
        recipient = OPERATOR
    else:
        recipient = _existing_agent(req, "to")
    if conn.caller.role != ADMIN:
        config = hive.lifecycle.config_of(conn.caller.name)
        if config is not None and not config.may_send_to(recipient):
            allowed = ", ".join(config.allowed_recipients or ()) or "nobody"
            raise p.Refusal(
                f"{conn.caller.name} may not message {recipient}: its config allows {allowed}",
                code=Code.FORBIDDEN,
            )
    msg = hive.broker.send(conn.caller.name, recipient, body)
    hive.changed("messages")
    return {"id": msg.id}


# agent sockets -------------------------------------------------------------------------


@command(
    "recv",
    AGENT_ROLES,
    "recv {wait_seconds ≤ 180, ack?}: the next inbox message, waiting for one",
)
async def recv(hive: Hive, conn: Connection, req: dict[str, Any]) -> Result:
    wait = p.get_number(req, "wait_seconds", 0, minimum=0, maximum=MAX_WAIT_SECONDS)
    lease = p.get_bool(req, "ack", False)
    got = await hive.broker.recv(conn, conn.caller.name, float(wait), lease=lease)
    if got.message is None:
        return {"message": None, **({"kicked": True} if got.kicked else {})}
    msg = got.message
    hive.changed("messages")
    return Reply(p.ok(message=msg.to_dict()), undo=lambda: hive.broker.unclaim(msg, conn))


@command(
    "set_aside",
    AGENT_ROLES,
    "set_aside {id?, reason}: a message of this agent's inbox it cannot read is set aside",
)
def set_aside(hive: Hive, conn: Connection, req: dict[str, Any]) -> Result:
    wanted = None if req.get("id") is None else _id(req)
    reason = p.get_str(req, "reason", max_bytes=1000)
    chosen = inboxes.set_aside_for(conn.caller.name, wanted, f"the harness: {reason}")
    conn.leases.discard(chosen)
    hive.changed("messages", "notifications")
    return {"id": chosen}


@command("ack", AGENT_ROLES, "ack {id}: the message from `recv {ack: true}` is safely kept")
def ack(hive: Hive, conn: Connection, req: dict[str, Any]) -> Result:
    fresh = hive.broker.ack(conn, conn.caller.name, _id(req))
    hive.changed("messages")
    return {"acked": fresh}


@command("get_model", AGENT_ROLES, "the model this agent's next turn uses (null = its default)")
def get_model(hive: Hive, conn: Connection, req: dict[str, Any]) -> Result:
    return {"model": hive.lifecycle.model_of(conn.caller.name)}


@command("set_turn_state", AGENT_ROLES, "set_turn_state {state, ...}: what the harness is doing")
def set_turn_state(hive: Hive, conn: Connection, req: dict[str, Any]) -> Result:
    state = p.get_str(req, "state", max_bytes=32)
    if state not in TURN_STATES:
        raise p.ProtocolError(f"field 'state' must be one of {', '.join(TURN_STATES)}")
    fields: dict[str, Any] = {
        "state": state,
        "tool": p.get_str(req, "tool", None, max_bytes=200),
        "detail": p.get_str(req, "detail", None, max_bytes=4000, allow_empty=True),
        "turn_started_at": p.get_number(req, "started_at", None, minimum=0),
        "turn_ended_at": p.get_number(req, "ended_at", None, minimum=0),
        "input_tokens": p.get_int(req, "input_tokens", 0, minimum=0, maximum=MAX_TOKENS),
        "output_tokens": p.get_int(req, "output_tokens", 0, minimum=0, maximum=MAX_TOKENS),
        "cached_tokens": p.get_int(req, "cached_tokens", 0, minimum=0, maximum=MAX_TOKENS),
        "cost_usd": p.get_number(req, "cost_usd", 0.0, minimum=0),
        "updated_at": now(),
        "turn": p.get_str(req, "turn", None, max_bytes=64),
    }
    TurnState.insert(agent=conn.caller.name, **fields).on_conflict_replace().execute()
    hive.changed("turns")
    return {}


@command(
    "ask_operator",
    AGENT_ROLES,
    "ask_operator {question, options?, multi?, ttl_seconds?}: queue a question, get its id",
)
def ask_operator(hive: Hive, conn: Connection, req: dict[str, Any]) -> Result:
    qid = hive.questions.ask(
        conn.caller.name,
        p.get_str(req, "question", max_bytes=8000),
        p.get_str_list(req, "options", [], max_items=32, max_bytes=500),
        p.get_bool(req, "multi", False),
        p.get_number(req, "ttl_seconds", None, minimum=1, maximum=questions.MAX_TTL),
    )
    return {"id": qid}


@command(
    "await_cancel",
    AGENT_ROLES,
    "await_cancel {wait_seconds ≤ 180, since}: true when the operator cancels the turn",
)
async def await_cancel(hive: Hive, conn: Connection, req: dict[str, Any]) -> Result:
    wait = p.get_number(req, "wait_seconds", 0, minimum=0, maximum=MAX_WAIT_SECONDS)
    since = p.get_number(req, "since", minimum=0)
    return {"cancel": await hive.cancels.wait(conn, conn.caller.name, float(since), float(wait))}


# manager socket ------------------------------------------------------------------------


def _sub_agent(req: dict[str, Any], field: str = "agent") -> str:
    name = _existing_agent(req, field)
    if name == MANAGER:
        raise p.Refusal(
            "the manager cannot do this to itself: ask the operator", code=Code.FORBIDDEN
        )
    return name


@command(
    "request_apply_commit",
    frozenset({MANAGER_ROLE}),
    "request_apply_commit {agent, commit_ref}: ask the operator to apply a config commit",
)
async def request_apply_commit(hive: Hive, conn: Connection, req: dict[str, Any]) -> Result:
    agent = validate_agent_name(p.get_str(req, "agent", max_bytes=64))
    ref = p.get_str(req, "commit_ref", max_bytes=100)
    a = await hive.approvals.request_apply_commit(agent, ref)
    return {"id": a.id, "commit_ref": a.commit_ref}


@command(
    "request_spawn",
    frozenset({MANAGER_ROLE}),
    "request_spawn {name}: ask the operator to create an agent",
)
async def request_spawn(hive: Hive, conn: Connection, req: dict[str, Any]) -> Result:
    a = await hive.approvals.request_spawn(p.get_str(req, "name", max_bytes=64))
    return {"id": a.id}


@command(
    "request_init_config",
    frozenset({MANAGER_ROLE}),
    "request_init_config {name}: seed a new agent's proposed config repo from the template",
)
async def request_init_config(hive: Hive, conn: Connection, req: dict[str, Any]) -> Result:
    return await hive.approvals.request_init_config(p.get_str(req, "name", max_bytes=64))


# admin socket --------------------------------------------------------------------------


@command("list", OPERATOR_ONLY, "every agent with its state, model, turn and inbox")
def list_agents(hive: Hive, conn: Connection, req: dict[str, Any]) -> Result:
    return p.fit_listing("agents", hive.agent_rows(), age="created_at")


@command("agent_status", OPERATOR_ONLY, "agent_status {name?}: one agent's row (or all)")
def agent_status(hive: Hive, conn: Connection, req: dict[str, Any]) -> Result:
    if req.get("name") is None:
        return p.fit_listing("agents", hive.agent_rows(), age="created_at")
    return {"agents": hive.agent_rows(_existing_agent(req))}


@command("inbox", OPERATOR_ONLY, "inbox {name, all?}: an agent's undelivered messages")
def inbox(hive: Hive, conn: Connection, req: dict[str, Any]) -> Result:
    name = _existing_agent(req)
    rows, older = inboxes.listing(name, p.get_bool(req, "all", False))
    fitted = p.fit_listing("messages", rows, age="id", agent=name)
    fitted["omitted"] += older
    fitted["truncated"] = fitted["omitted"] > 0
    return fitted


@command("drop", OPERATOR_ONLY, "drop {id, note?}: remove an undelivered message from an inbox")
def drop(hive: Hive, conn: Connection, req: dict[str, Any]) -> Result:
    message = inboxes.drop(_id(req), p.get_str(req, "note", None, max_bytes=4000))
    hive.changed("messages", "agents")
    return {"message": message}


@command("kick", OPERATOR_ONLY, "kick {name}: wake the agent's harness to read its inbox")
def kick(hive: Hive, conn: Connection, req: dict[str, Any]) -> Result:
    name = _existing_agent(req)
    return {"woken": hive.broker.kick(name), "inbox": hive.broker.backlog(name)}


@command("spawn", OPERATOR_ONLY, "spawn {name, wait?}: create an agent now (no approval)")
async def spawn(hive: Hive, conn: Connection, req: dict[str, Any]) -> Result:
    name = validate_agent_name(p.get_str(req, "name", max_bytes=64), allow_manager=False)
    wait = p.get_bool(req, "wait", True)
    blob, sha = await hive.lifecycle.source_config(name)
    agents.create(name, state=AgentState.SPAWNING)
    hive.changed("agents")
    task = hive.spawn_task(hive.lifecycle.create(name, blob, sha, "operator spawn"))
    if wait:
        await asyncio.shield(task)
    return {"agent": hive.agent_rows(name)[0]}


@command("pending", OPERATOR_ONLY, "pending {all?}: approvals waiting for the operator")
def pending(hive: Hive, conn: Connection, req: dict[str, Any]) -> Result:
    return p.fit_listing("approvals", approvals.listing(p.get_bool(req, "all", False)), age="id")


def _id(req: dict[str, Any]) -> int:
    value: int = p.get_int(req, "id", minimum=1, maximum=2**62)
    return value


@command("approve", OPERATOR_ONLY, "approve {id, wait?}: apply exactly what the approval shows")
async def approve(hive: Hive, conn: Connection, req: dict[str, Any]) -> Result:
    a = await hive.approvals.approve(
        _id(req), operator_identity(conn, req), wait=p.get_bool(req, "wait", True)
    )
    return {"approval": approvals.approval_dict(a)}


@command("deny", OPERATOR_ONLY, "deny {id, note?}: refuse an approval")
def deny(hive: Hive, conn: Connection, req: dict[str, Any]) -> Result:
    a = hive.approvals.deny(
        _id(req), p.get_str(req, "note", None, max_bytes=4000), operator_identity(conn, req)
    )
    return {"approval": approvals.approval_dict(a)}


@command("questions", OPERATOR_ONLY, "questions {all?}: operator questions waiting for an answer")
def list_questions(hive: Hive, conn: Connection, req: dict[str, Any]) -> Result:
    return p.fit_listing("questions", questions.listing(p.get_bool(req, "all", False)), age="id")


@command("answer_question", OPERATOR_ONLY, "answer_question {id, answer}: answer a question")
def answer_question(hive: Hive, conn: Connection, req: dict[str, Any]) -> Result:
    raw = req.get("answer")
    answer: str | list[str]
    if isinstance(raw, list):
        answer = p.get_str_list(req, "answer", max_items=32, max_bytes=500)
    else:
        answer = p.get_str(req, "answer", max_bytes=8000)
    return {"question": hive.questions.answer(_id(req), answer, operator_identity(conn, req))}


@command(
    "cancel_question", OPERATOR_ONLY, "cancel_question {id}: resolve a question as [cancelled]"
)
def cancel_question(hive: Hive, conn: Connection, req: dict[str, Any]) -> Result:
    return {"question": hive.questions.cancel(_id(req), operator_identity(conn, req))}


def _target(conn: Connection, req: dict[str, Any]) -> str:
    """The agent a lifecycle verb acts on: `name` from the operator, `agent` from the manager."""
    if conn.caller.role == MANAGER_ROLE:
        return _sub_agent(req)
    return _existing_agent(req)


def _lifecycle_verb(verb: str, roles: frozenset[str], summary: str) -> None:
    """start / stop / restart / kill: the same shape, one lifecycle call each."""

    async def handler(hive: Hive, conn: Connection, req: dict[str, Any]) -> Result:
        name = _target(conn, req)
        await getattr(hive.lifecycle, verb)(name)
        return {"agent": hive.agent_rows(name)[0]}

    command(verb, roles, summary)(handler)


_lifecycle_verb("start", OPERATOR_AND_MANAGER, "start {name} (manager: {agent}): start an agent")
_lifecycle_verb("stop", OPERATOR_ONLY, "stop {name}: stop an agent")
_lifecycle_verb("restart", OPERATOR_AND_MANAGER, "restart {name} (manager: {agent}): restart")
_lifecycle_verb("kill", OPERATOR_AND_MANAGER, "kill {name} (manager: {agent}): kill at once")


@command("destroy", OPERATOR_ONLY, "destroy {name, purge?}: remove an agent's container")
async def destroy(hive: Hive, conn: Connection, req: dict[str, Any]) -> Result:
    name = _existing_agent(req)
    await hive.lifecycle.destroy(name, p.get_bool(req, "purge", False))
    return {"destroyed": name}


@command(
    "rebuild",
    OPERATOR_ONLY,
    "rebuild {name, if_stale?}: regenerate an agent from its applied config",
)
async def rebuild(hive: Hive, conn: Connection, req: dict[str, Any]) -> Result:
    name = _existing_agent(req)
    if p.get_bool(req, "if_stale", False):
        done = await hive.lifecycle.rebuild_if_stale(name)
        if done is None:
            return {
                "rebuilt": name,
                "ok_build": True,
                "skipped": True,
                "note": "already built from the installed platform",
                "agent": hive.agent_rows(name)[0],
            }
        ok, note = done
    else:
        ok, note = await hive.lifecycle.rebuild(name)
    return {
        "rebuilt": name,
        "ok_build": ok,
        "skipped": False,
        "note": note,
        "agent": hive.agent_rows(name)[0],
    }


@command("set_model", OPERATOR_ONLY, "set_model {name, model}: override the model (null clears)")
def set_model(hive: Hive, conn: Connection, req: dict[str, Any]) -> Result:
    name = _existing_agent(req)
    model = p.get_str(req, "model", None, max_bytes=100)
    if model is not None and not valid_model(model):
        raise p.ProtocolError(f"model {model!r} is not a model name such as 'claude-sonnet-4-5'")
    hive.lifecycle.set_model(name, model)
    return {"model": hive.lifecycle.model_of(name)}


@command("cancel_turn", OPERATOR_ONLY, "cancel_turn {name}: stop the agent's running turn")
def cancel_turn(hive: Hive, conn: Connection, req: dict[str, Any]) -> Result:
    name = _existing_agent(req)
    return {"woken": hive.cancels.request(name)}


@command("watch", OPERATOR_ONLY, "watch {after, wait_seconds ≤ 180}: wait for the next change")
async def watch(hive: Hive, conn: Connection, req: dict[str, Any]) -> Result:
    after = p.get_int(req, "after", minimum=-1)
    wait = p.get_number(req, "wait_seconds", 0, minimum=0, maximum=MAX_WAIT_SECONDS)
    version, kinds = await hive.feed.wait(conn, after, float(wait))
    return {"changes": version, "kinds": kinds}


@command("history", OPERATOR_ONLY, "history {agent?, since?}: the audit trail, newest first")
def history_of(hive: Hive, conn: Connection, req: dict[str, Any]) -> Result:
    agent = p.get_str(req, "agent", None, max_bytes=64)
    if agent is not None:
        agent = validate_agent_name(agent)
    since = p.get_number(req, "since", None, minimum=0)
    rows = history.listing(agent, since)
    return p.fit_listing("decisions", rows, age="at")


@command("waiting", OPERATOR_ONLY, "waiting: everything that waits on the operator")
def waiting_now(hive: Hive, conn: Connection, req: dict[str, Any]) -> Result:
    return {"waiting": waiting.waiting()}
