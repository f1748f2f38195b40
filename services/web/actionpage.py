"""The action-link page (`/act/<secret>`): GET shows one approval, question or reached spending
cap and what its link may still do, and never acts (link previews and prefetchers fetch it
too); POST confirms, through one `action_redeem` that the coordinator checks and records in
the link's name.

No session is needed: the link's secret is the capability, the form carries the link's own
token, and the guard's origin checks still apply. Nothing here reads a secret back from
SQLite (only its hash is there) or writes anything.
"""

from __future__ import annotations

import json
import time
from typing import Any

from bottle import request, response  # type: ignore[import-untyped]

from ..hive import actionlinks
from ..hive.vocab import LinkState
from . import display, pages, views
from .actions import form_usd
from .admin import Refused, Unreachable
from .context import BadRequest, Context, audit, wants_json

HEADINGS = {
    LinkState.OPEN: "d3cide",
    LinkState.STALE: "st4le",
    LinkState.UNKNOWN: "unkn0wn link",
    LinkState.EXPIRED: "exp1red",
    LinkState.USED: "us3d",
    LinkState.RESOLVED: "alr3ady decided",
    LinkState.CHANGED: "ch4nged",
    LinkState.GONE: "g0ne",
}


def _clock(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(t)) if t else ""


def view(secret: str) -> dict[str, Any]:
    """What the page shows of the link: its state, its sentence and (while usable) its item."""
    with views.read_tx():
        v = actionlinks.inspect(secret)
        approval = views.approval_view(v.approval) if v.approval is not None else None
        cap = None
        if v.cap is not None:
            cap = {
                **views.standing_view(v.cap.standing, v.cap.agent),
                "window": v.cap.event.since,
                "reached_cap": display.cost(v.cap.event.cap_usd),
            }
        question = None
        if v.question is not None:
            question = {
                **views.question_view(v.question),
                "deadline_clock": _clock(v.question.deadline),
            }
    return {
        "state": str(v.state),
        "usable": v.usable,
        "sentence": v.sentence,
        "show_item": v.usable,  # a used, expired or unknown link shows nothing of its item
        "approval": approval,
        "question": question,
        "cap": cap,
        "status": 200 if v.usable else v.code.http_status,
    }


def _page(
    secret: str,
    v: dict[str, Any],
    *,
    done: str | None = None,
    error: str | None = None,
    status: int = 200,
) -> str:
    response.status = status
    response.set_header("X-Robots-Tag", "noindex, nofollow")
    heading = "d0ne" if done else "r3fused" if error else HEADINGS[LinkState(v["state"])]
    return pages.render(
        "act",
        v=v,
        secret=secret,
        token=actionlinks.form_token(secret),
        heading=heading,
        done=done,
        error=error,
    )


def _texts(name: str) -> list[str]:
    """Every value of form field `name` (the page's form posts plain fields), as text."""
    try:
        return [str(v).encode("latin-1").decode("utf-8") for v in request.forms.getall(name)]
    except UnicodeError:
        raise BadRequest(f"field {name!r} is not UTF-8 text") from None


def show(ctx: Context, secret: str) -> str:
    """GET /act/<secret>: the item and its form; changes nothing."""
    v = view(secret)
    return _page(secret, v, status=int(v["status"]))


def confirm(ctx: Context, secret: str) -> Any:
    """POST /act/<secret> (`action`, `answer`…, `note`, `usd`): act once through the link."""
    try:
        usd = form_usd()
        answers = [a for a in _texts("answer") if a]
        fields: dict[str, Any] = {
            "secret": secret,
            "token": next(iter(_texts("csrf")), ""),
            "action": next(iter(_texts("action")), ""),
            "note": next(iter(_texts("note")), "") or None,
            "answer": answers if len(answers) > 1 else (answers[0] if answers else None),
            "actor": "action link page",
        }
        if usd is not None:
            fields["usd"] = usd
        got = ctx.admin.call("action_redeem", **fields)
    except (Refused, Unreachable, BadRequest) as e:
        status = (
            e.code.http_status
            if isinstance(e, Refused)
            else 400
            if isinstance(e, BadRequest)
            else 503
        )
        if wants_json():
            response.status = status
            response.content_type = "application/json"
            return json.dumps({"ok": False, "message": str(e)})
        return _page(secret, view(secret), error=str(e), status=status)
    row = got.get("approval") or got.get("question") or got.get("budget") or {}
    agent = row.get("agent") or row.get("asker")
    audit(f"acted through an action link: {got.get('message')}", agent)
    if wants_json():
        response.content_type = "application/json"
        return json.dumps({"ok": True, **got})
    return _page(secret, view(secret), done=str(got.get("message")))
