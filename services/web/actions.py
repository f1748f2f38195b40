"""The action routes (every POST but sign-in and sign-out, and GET /api/model): each reads
its fields, runs one admin command in the session's name, journals it and answers through
`reply`; a refusal becomes its status in `refused`. Nothing here touches SQLite or a container.
"""

from __future__ import annotations

from typing import Any

from bottle import request  # type: ignore[import-untyped]

from ..hive.names import InvalidName, validate_agent_name
from ..hive.vocab import ApprovalKind, Verb
from . import views
from .admin import SLOW, Refused, Unreachable
from .context import (
    BadRequest,
    Context,
    action,
    agent_name,
    audit,
    form_text,
    refused,
    reply,
    visitor,
)

VERBS = tuple(Verb)
"""The lifecycle verbs the dashboard posts (`/<verb>/<name>`)."""

Done = tuple[str, dict[str, Any]]


def act(ctx: Context, cmd: str, **fields: Any) -> dict[str, Any]:
    """One admin command in the name of the request's session."""
    return ctx.admin.call(cmd, actor=visitor().actor, **fields)


# the model (GET|POST /api/model) -------------------------------------------------------


def model_get(ctx: Context) -> Any:
    try:
        name = agent_name(request.query.getunicode("name") or "")
        row = ctx.admin.call("agent_status", name=name)["agents"][0]
    except (Refused, Unreachable, InvalidName) as e:
        return refused(e)
    return reply(
        True,
        f"{name} uses {row.get('model') or 'its default model'}",
        name=name,
        model=row.get("model"),
        override=row.get("model_override"),
    )


@action
def model_set(ctx: Context) -> Done:
    name = agent_name(form_text("name") or "")
    model = (form_text("model", required=False, max_len=100) or "").strip()
    value = None if model in ("", "default", "-") else model
    got = act(ctx, "set_model", name=name, model=value)["model"]
    audit(f"set the model of {name} to {value or 'its default'}", name)
    return f"{name} now uses {got or 'its default model'}", {"name": name, "model": got}


# approvals and questions ---------------------------------------------------------------


@action
def approve(ctx: Context, aid: int) -> Done:
    got = act(ctx, "approve", id=aid, wait=False)["approval"]
    audit(f"approved #{aid}", got.get("agent"), approval=aid)
    what = "spawning" if got.get("kind") == ApprovalKind.SPAWN else "applying to"
    return f"approval #{aid} approved: {what} {got.get('agent')}", {"approval": got}


@action
def deny(ctx: Context, aid: int) -> Done:
    note = form_text("note", required=False, max_len=4000) or None
    got = act(ctx, "deny", id=aid, note=note)["approval"]
    audit(f"denied #{aid}", got.get("agent"), approval=aid)
    return f"approval #{aid} denied", {"approval": got}


@action
def answer(ctx: Context, qid: int) -> Done:
    try:
        chosen = [str(a) for a in request.forms.decode().getall("answer")]
    except UnicodeError:
        raise BadRequest("the answer is not UTF-8 text") from None
    if not chosen or not any(c.strip() for c in chosen):
        raise BadRequest("choose or type an answer first")
    given: str | list[str] = chosen if views.question_is_multi(qid) else chosen[0]
    got = act(ctx, "answer_question", id=qid, answer=given)["question"]
    audit(f"answered question #{qid}", got.get("asker"), question=qid)
    return f"question #{qid} answered", {"question": got}


@action
def cancel_question(ctx: Context, qid: int) -> Done:
    got = act(ctx, "cancel_question", id=qid)["question"]
    audit(f"cancelled question #{qid}", got.get("asker"), question=qid)
    return f"question #{qid} cancelled", {"question": got}


# agents --------------------------------------------------------------------------------


@action
def lifecycle(ctx: Context, cmd: str, name: str) -> Done:
    """POST /<cmd>/<name> for each of `VERBS`."""
    name = agent_name(name)
    got = act(ctx, cmd, name=name, timeout=SLOW)
    audit(f"{cmd} {name}", name)
    if cmd == Verb.REBUILD and not got.get("ok_build", True):
        raise Refused(str(got.get("note") or f"rebuild of {name} failed"))
    return f"{name} {Verb(cmd).done}", {"result": got}


@action
def cancel_turn(ctx: Context, name: str) -> Done:
    name = agent_name(name)
    woken = act(ctx, "cancel_turn", name=name)["woken"]
    audit(f"cancelled the turn of {name}", name)
    return f"cancel sent to {name}" + ("" if woken else " (no turn was listening)"), {}


@action
def spawn(ctx: Context) -> Done:
    name = validate_agent_name(form_text("name", max_len=64), allow_manager=False)
    got = act(ctx, "spawn", name=name, wait=False)["agent"]
    audit(f"spawned {name}", name)
    return f"spawning {name}", {"agent": got}


@action
def update_all(ctx: Context) -> Done:
    stale = views.stale(act(ctx, "list")["agents"])
    failed = []
    for name in stale:
        got = act(ctx, "rebuild", name=name, if_stale=True, timeout=SLOW)
        if not got.get("ok_build", True):
            failed.append(name)
    audit(f"updated {len(stale)} containers", None)
    if failed:
        raise Refused(f"rebuilt {len(stale) - len(failed)}; failed: {', '.join(failed)}")
    return f"rebuilt {len(stale)} container{'s' if len(stale) != 1 else ''}", {"rebuilt": stale}


# messages ------------------------------------------------------------------------------


@action
def send(ctx: Context, name: str) -> Done:
    name = agent_name(name)
    body = form_text("body") or ""
    got = act(ctx, "send", to=name, body=body)
    audit(f"sent message #{got['id']} to {name}", name)
    return f"sent to {name}", {"id": got["id"]}


@action
def drop(ctx: Context, mid: int) -> Done:
    note = form_text("note", required=False, max_len=4000) or None
    got = act(ctx, "drop", id=mid, note=note)["message"]
    audit(f"dropped message #{mid}", got.get("recipient"), message_no=mid)
    return f"message #{mid} dropped", {"dropped": got}
