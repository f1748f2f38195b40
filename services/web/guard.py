"""The door every request passes: host, origin, session and CSRF checks before any route runs,
the security headers after it, and the error page. Answers no route itself; a request it
refuses is logged and never reaches one.
"""

from __future__ import annotations

import json
from typing import Any, NoReturn

import bottle  # type: ignore[import-untyped]
from bottle import HTTPError, request, response  # type: ignore[import-untyped]

from ..hive import actionlinks
from ..hive import log as hlog
from . import auth, connections, pages, security
from .context import SIGN_IN_FIRST, Context, wants_json


def shown_path(path: str) -> str:
    """A request's path as the journal shows it: never a link's secret."""
    for prefix in ("/login/", actionlinks.PATH):
        if path.startswith(prefix) and len(path) > len(prefix):
            return prefix + "…"
    return path


def refuse(status: int, message: str) -> NoReturn:
    hlog.log(
        f"refused {request.method} {shown_path(request.path)} from {request.remote_addr}: "
        f"{message}",
        kind="web_request",
        priority=hlog.WARNING,
    )
    raise HTTPError(status, message)


def check(ctx: Context) -> None:
    """Before every request: a foreign host or a cross-site POST is 403; no session is 401
    (a GET page redirects to /login) except on sign-in and /static; a POST needs its CSRF
    token (the session's, or before sign-in the double-submit cookie's)."""
    utf8_headers(request.environ)
    try:
        security.check_host(request.headers.get("Host"), ctx.settings.public_host)
        if request.method not in ("GET", "HEAD"):
            security.check_same_origin(request.headers)
    except security.Forbidden as e:
        refuse(403, str(e))
    who = ctx.doorkeeper.visitor(request.get_cookie(auth.SESSION_COOKIE))
    request.environ["hive.visitor"] = who
    if who is not None:
        connections.trust(request.environ)
    elif not auth.public(request.path):
        if wants_json() or request.method != "GET":
            refuse(401, SIGN_IN_FIRST)
        bottle.redirect("/login", 303)
    if request.method in ("GET", "HEAD"):
        return
    submitted = request.headers.get(security.CSRF_HEADER) or request.forms.getunicode(
        security.CSRF_FIELD
    )
    link = actionlinks.secret_of_path(request.path)
    if link is not None:  # an action link's form carries the link's own token, no session's
        expected: str | None = actionlinks.form_token(link)
    else:
        expected = who.csrf if who is not None else request.get_cookie(security.CSRF_COOKIE)
    try:
        security.check_csrf(expected, submitted)
    except security.Forbidden as e:
        refuse(403, str(e))


def after(ctx: Context) -> None:
    """After every request: the security headers; after a POST, fresh agent rows."""
    for key, value in security.SECURITY_HEADERS.items():
        response.headers.setdefault(key, value)
    if request.method == "POST":
        # the operator's next page shows what this action did, even before the live
        # loop has heard of the change (the cached `list` rows would be older)
        ctx.hub.rows.invalidate()


def error_page(err: HTTPError) -> str:
    """Every HTTP error: JSON for the page's fetch() and for a POST, else the error page."""
    for key, value in security.SECURITY_HEADERS.items():
        err.headers.setdefault(key, value)
    message = str(err.body or err.status_line)
    if wants_json() or request.method != "GET":
        response.content_type = "application/json"
        return json.dumps({"ok": False, "message": message})
    response.content_type = "text/html; charset=utf-8"
    return pages.render("error", status=err.status_line, message=message)


def utf8_headers(environ: dict[str, Any]) -> None:
    """Make every header readable: bottle raises on a value that is not UTF-8 when it is read."""
    for key, value in list(environ.items()):
        if key.startswith("HTTP_") and isinstance(value, str):
            raw = value.encode("latin-1", "replace")
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                environ[key] = raw.decode("utf-8", "replace").encode().decode("latin-1")
