"""What every dashboard route shares: the `Context` built once by `__main__`, and the helpers
that read a request (its session, its fields) and write its answer (JSON, or a redirect back;
a refusal as the status its hive `Code` names). Never runs an admin command itself.
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import bottle  # type: ignore[import-untyped]
from bottle import HTTPError, request, response  # type: ignore[import-untyped]

from ..hive import log as hlog
from ..hive.names import InvalidName, validate_agent_name
from ..hive.vocab import Code
from . import journal, pages
from .admin import Admin, Refused, Unreachable
from .auth import Doorkeeper, Visitor
from .live import Hub, StreamSlots
from .settings import WebSettings

MAX_FORM = 256 * 1024
SIGN_IN_FIRST = "sign in first: run `hivectl login` on the host and open its link"


@dataclass
class Context:
    """Everything a route needs, built once by `__main__` (a test builds one of fakes)."""

    settings: WebSettings
    admin: Admin
    hub: Hub
    renderer: pages.Renderer
    journal: journal.JournalSource
    slots: StreamSlots
    doorkeeper: Doorkeeper
    stopping: threading.Event = field(default_factory=threading.Event)


class BadRequest(Exception):
    """Input the dashboard cannot use; the message names the field."""


# answers -------------------------------------------------------------------------------


def wants_json() -> bool:
    return "application/json" in (request.headers.get("Accept") or "") or request.path.startswith(
        "/api/"
    )


def reply(ok: bool, message: str, status: int = 200, **data: Any) -> Any:
    """JSON for the page's fetch(); a redirect back for a plain form post."""
    if wants_json() or not ok:
        response.status = status
        response.content_type = "application/json"
        return json.dumps({"ok": ok, "message": message, **data})
    back = request.headers.get("Referer") or "/"
    parts = urlsplit(back)
    target = (parts.path or "/") if parts.netloc in ("", request.headers.get("Host")) else "/"
    bottle.redirect(target, 303)


def refused(e: Refused | Unreachable | BadRequest | InvalidName) -> Any:
    """The one place a refusal becomes an HTTP answer: its status from the hive's code."""
    if isinstance(e, Refused):
        return reply(False, str(e), e.code.http_status, code=str(e.code))
    if isinstance(e, Unreachable):
        return reply(False, str(e), Code.UNAVAILABLE.http_status, code=str(Code.UNAVAILABLE))
    return reply(False, str(e), Code.INVALID.http_status, code=str(Code.INVALID))


def action(fn: Callable[..., tuple[str, dict[str, Any]]]) -> Callable[..., Any]:
    """A POST route: its function returns (message, data); refusals become one sentence."""

    @functools.wraps(fn)
    def run(*args: Any, **kw: Any) -> Any:
        try:
            message, data = fn(*args, **kw)
        except (Refused, Unreachable, BadRequest, InvalidName) as e:
            return refused(e)
        return reply(True, message, **data)

    return run


def audit(what: str, agent: str | None, **fields: Any) -> None:
    """Journal what the operator did, in the session's name (`HIVE_EVENT=web_request`)."""
    who = request.environ.get("hive.visitor")
    by = who.actor if isinstance(who, Visitor) else f"dashboard visitor {request.remote_addr}"
    hlog.log(f"operator {what} ({by})", kind="web_request", agent=agent, operator=by, **fields)


# reading the request -------------------------------------------------------------------


def form_text(name: str, *, required: bool = True, max_len: int = MAX_FORM) -> str | None:
    value: str | None = request.forms.getunicode(name)
    if value is None and name in request.forms:  # there, but its bytes are not UTF-8
        raise BadRequest(f"field {name!r} is not UTF-8 text")
    if value is None and request.json is not None and isinstance(request.json, dict):
        raw = request.json.get(name)
        value = raw if isinstance(raw, str) or raw is None else None
    if value is not None and len(value.encode("utf-8", "surrogatepass")) > max_len:
        raise BadRequest(f"field {name!r} is longer than {max_len} bytes of UTF-8")
    if required and not value:
        raise BadRequest(f"field {name!r} is required")
    return value


def agent_name(name: str) -> str:
    return validate_agent_name(name)


def path_agent(name: str) -> str:
    """An agent name from a GET path or query; a bad one is a 400, not a 500."""
    try:
        return validate_agent_name(name)
    except InvalidName as e:
        raise HTTPError(400, str(e)) from None


def visitor() -> Visitor:
    """The request's session (the guard let the request in, so there is one)."""
    who = request.environ.get("hive.visitor")
    if not isinstance(who, Visitor):
        raise HTTPError(401, SIGN_IN_FIRST)
    return who
