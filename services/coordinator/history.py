"""The audit trail: which admin (and manager lifecycle) commands are decisions, how each is
recorded — when, who, through which channel, on what, with what outcome — and reading it
back. Rows are never deleted: purging an agent keeps its history.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ..hive import log as hlog
from ..hive.db import Approval, Decision, Message, OperatorQuestion, now
from ..hive.names import InvalidName, validate_agent_name
from ..hive.vocab import Channel
from ..hive.wire import DecisionRow

ACTIONS = {
    "approve": "approve",
    "deny": "deny",
    "answer_question": "answer",
    "cancel_question": "cancel",
    "spawn": "spawn",
    "start": "start",
    "stop": "stop",
    "restart": "restart",
    "kill": "kill",
    "destroy": "destroy",
    "rebuild": "rebuild",
    "set_model": "model",
    "set_budget": "cap",
    "cancel_turn": "cancel_turn",
    "drop": "drop",
    "session_open": "login",
    "session_close": "logout",
    "logout_all": "logout_all",
    "set_password": "password",
    "login_link": "login_link",
}
"""Socket commands that are decisions or lifecycle actions, and their name in the trail."""

SECRET_FIELDS = frozenset({"password", "link", "secret", "actor", "cmd"})
"""Request fields never copied into the trail."""


def target_of(req: dict[str, Any]) -> str:
    for key in ("name", "agent", "to"):
        value = req.get(key)
        if isinstance(value, str):
            try:
                return validate_agent_name(value)
            except InvalidName:
                return ""
    return ""


def detail_of(cmd: str, req: dict[str, Any]) -> dict[str, Any]:
    """What the trail keeps of a request: its plain fields, and for an approval the agent
    and a hash of the diff the operator saw."""
    out = {
        k: v
        for k, v in req.items()
        if k not in SECRET_FIELDS
        and isinstance(v, str | int | float | bool | list)
        and len(str(v)) < 2000
    }
    ident = req.get("id")
    if not isinstance(ident, int) or not 0 < ident < 2**62:
        return out  # a refused id: nothing to look up
    if cmd in ("approve", "deny") and isinstance(ident, int):
        a: Approval | None = Approval.get_or_none(Approval.id == ident)
        if a is not None:
            out["agent"] = a.agent
            out["kind"] = a.kind
            out["diff_sha256"] = hashlib.sha256((a.diff or "").encode()).hexdigest()
    if cmd in ("answer_question", "cancel_question") and isinstance(ident, int):
        q: OperatorQuestion | None = OperatorQuestion.get_or_none(OperatorQuestion.id == ident)
        if q is not None:
            out["agent"] = q.asker
    if cmd == "drop" and isinstance(ident, int):
        m: Message | None = Message.get_or_none(Message.id == ident)
        if m is not None:
            out["agent"] = m.recipient
    return out


def record(
    cmd: str, actor: str, req: dict[str, Any], outcome: str, reply: dict[str, Any] | None = None
) -> None:
    """One decision, durably, and its journal line (HIVE_ACTOR=). Never raises: the decision
    is made; a trail that cannot be written is said loudly in the journal instead."""
    try:
        _record(cmd, actor, req, outcome, reply)
    except Exception as e:  # the database may be full or locked: the reply still goes out
        hlog.log(
            f"could not record {cmd} by {actor} ({outcome}) in the audit trail: {e!r}",
            kind="internal_error",
            priority=hlog.ERR,
        )


def _record(
    cmd: str, actor: str, req: dict[str, Any], outcome: str, reply: dict[str, Any] | None
) -> None:
    action = ACTIONS[cmd]
    detail = detail_of(cmd, req)
    target = target_of(req) or str(detail.get("agent") or "")
    if not target and isinstance(req.get("id"), int):
        noun = {"approve": "approval", "deny": "approval", "drop": "message"}.get(cmd, "question")
        target = f"{noun} #{req['id']}"  # what it named does not exist
    if cmd == "session_open" and reply is not None and reply.get("id"):
        actor = f"dashboard session #{reply['id']}"
        detail = {"client": reply.get("client"), "by": reply.get("opened_by")}
    channel = Channel.of_actor(actor)
    Decision.create(
        at=now(),
        actor=actor,
        channel=channel,
        action=action,
        target=target,
        detail=json.dumps(detail, sort_keys=True),
        outcome=outcome,
    )
    hlog.log(
        f"{action} {target} by {actor}: {outcome}",
        kind="operator_decision",
        agent=target if target and "#" not in target else None,
        actor=actor,
        channel=channel,
    )


def decision_dict(d: Decision) -> DecisionRow:
    return DecisionRow(
        id=d.id,
        at=d.at,
        actor=d.actor,
        channel=d.channel,
        action=d.action,
        target=d.target,
        detail=json.loads(d.detail),
        outcome=d.outcome,
    )


def listing(agent: str | None, since: float | None, limit: int = 1000) -> list[DecisionRow]:
    """Newest first: every decision, or those about `agent`, at or after `since`."""
    query = Decision.select().order_by(Decision.id.desc()).limit(limit)
    if agent is not None:
        query = query.where(Decision.target == agent)
    if since is not None:
        query = query.where(Decision.at >= since)
    return [decision_dict(d) for d in query]


def outcome_of(reply: dict[str, Any]) -> str:
    """ "ok", or what state an approval was left in."""
    approval = reply.get("approval")
    if isinstance(approval, dict) and approval.get("status") not in (None, "approved", "denied"):
        return f"ok ({approval.get('status')})"
    if reply.get("ok_build") is False:
        return f"failed: {reply.get('note')}"
    return "ok"
