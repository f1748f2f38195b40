"""The action routes (every POST but sign-in and sign-out, and GET /api/model): each reads
its fields, runs one admin command in the session's name, journals it and answers through
`reply`; a refusal becomes its status in `refused`. Nothing here touches SQLite or a container.
"""

from __future__ import annotations

from typing import Any

from bottle import request  # type: ignore[import-untyped]

from ..hive import budget
from ..hive.names import InvalidName, validate_agent_name
from ..hive.vocab import ApprovalKind, Period, Verb
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


# spending caps ---------------------------------------------------------------------------


def form_period() -> Period:
    """The form's `period`: daily, monthly or total."""
    text = form_text("period", max_len=16) or ""
    try:
        return Period(text)
    except ValueError:
        raise BadRequest(f"field 'period' must be one of {', '.join(Period)}") from None


def form_usd(name: str = "usd") -> float | None:
    """A cap in US dollars from the form; None when the field is empty (the config's)."""
    text = (form_text(name, required=False, max_len=32) or "").strip().lstrip("$")
    if not text:
        return None
    try:
        return budget.check_usd(float(text), f"field {name!r}")
    except ValueError as e:  # BudgetError is one, with its sentence
        said = str(e) if isinstance(e, budget.BudgetError) else ""
        raise BadRequest(said or f"field {name!r} must be a number of US dollars") from None


def _cap_said(name: str, got: dict[str, Any], period: Period) -> str:
    row = next(p for p in got["periods"] if p["period"] == period)
    cap = "no cap" if row["cap_usd"] is None else f"${row['cap_usd']:.2f} ({row['source']})"
    return f"{name}'s {period} cap is {cap}" + (f": {got['detail']}" if got["over"] else "")


@action
def set_cap(ctx: Context, name: str) -> Done:
    """POST /cap/<name> (`period`, `usd`: a number, or empty for the config's cap)."""
    name = agent_name(name)
    period, usd = form_period(), form_usd()
    got = act(ctx, "set_budget", name=name, **{period.config_key: usd})
    audit(f"set the {period} cap of {name} to {usd if usd is not None else 'its config'}", name)
    return _cap_said(name, got, period), {"budget": got}


@action
def reset_budget(ctx: Context, name: str) -> Done:
    """POST /reset-budget/<name> (`period`): the period's count restarts from now."""
    name = agent_name(name)
    period = form_period()
    got = act(ctx, "set_budget", name=name, reset=[str(period)])
    audit(f"reset the {period} count of {name}", name)
    return f"{name}'s {period} count restarts now; " + _cap_said(name, got, period), {"budget": got}


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
