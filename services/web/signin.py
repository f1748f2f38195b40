"""Signing in and out: the sign-in page, a `hivectl login` link or the password opening a
session (`session_open`), the session cookie, `/api/session`, and sign-out (`session_close`).
Sessions belong to the coordinator; this module only asks for them and sets the cookie.
"""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any

import bottle  # type: ignore[import-untyped]
from bottle import request, response  # type: ignore[import-untyped]

from . import auth, pages, security
from .admin import Refused, Unreachable
from .context import Context, audit, reply, visitor, wants_json


def login_csrf() -> str:
    """Before sign-in, the CSRF token is a cookie the page repeats (double submit)."""
    value = request.get_cookie(security.CSRF_COOKIE)
    if not value or len(value) < 32 or len(value) > 64:
        value = security.new_csrf_token()
        response.set_cookie(security.CSRF_COOKIE, value, path="/", httponly=True, samesite="strict")
    return str(value)


def secure(ctx: Context) -> bool:
    """Cookies are Secure when the browser came over TLS (directly or via the proxy)."""
    if request.urlparts.scheme == "https":
        return True
    host = (request.headers.get("Host") or "").split(":")[0].lower()
    return ctx.settings.https and host == ctx.settings.public_host


def login_page(error: str | None = None, status: int = 200) -> str:
    response.status = status
    return pages.render("login", csrf=login_csrf(), error=error)


def signed_in(ctx: Context, opened: dict[str, Any]) -> str:
    response.set_cookie(
        auth.SESSION_COOKIE,
        str(opened["session"]),
        path="/",
        httponly=True,
        samesite="strict",
        secure=secure(ctx),
        max_age=max(1, int(float(opened["expires_at"]) - time.time())),
    )
    # A page that moves on by itself: a SameSite=Strict cookie set by a navigation
    # that began on another site is sent only once the page itself navigates.
    return pages.render("signed_in", session=opened["id"])


def open_session(ctx: Context, **how: Any) -> str:
    """`session_open` with a link's secret or a password; a refusal is the sign-in page."""
    try:
        opened = ctx.admin.call("session_open", client=request.remote_addr or "?", **how)
    except Refused as e:
        return login_page(str(e), 401)
    except Unreachable as e:
        return login_page(str(e), 503)
    audit(f"signed in as session #{opened['id']} ({opened['kind']})", None)
    return signed_in(ctx, opened)


# routes --------------------------------------------------------------------------------


def login_form(ctx: Context) -> Any:
    """GET /login: the sign-in page, or on to / for a visitor already signed in."""
    if request.environ.get("hive.visitor") is not None:
        bottle.redirect("/", 303)
    return login_page()


def login_link(ctx: Context, secret: str) -> str:
    """GET /login/<secret>: a `hivectl login` link."""
    return open_session(ctx, link=secret)


def login_password(ctx: Context) -> str:
    """POST /login: a password sign-in."""
    password = request.forms.getunicode("password") or ""
    if not password:
        return login_page("type the password, or run `hivectl login` for a link", 400)
    return open_session(ctx, password=password[:1024])


def session_info(ctx: Context) -> str:
    """GET /api/session: this request's session (the guard answers 401 when it is over)."""
    who = visitor()
    response.content_type = "application/json"
    return json.dumps({"ok": True, "session": who.session_id})


def logout(ctx: Context) -> Any:
    """POST /logout: end this session, whether or not the coordinator answers."""
    who = visitor()
    with contextlib.suppress(Refused, Unreachable):
        ctx.admin.call("session_close", id=who.session_id, actor=who.actor)
    response.delete_cookie(auth.SESSION_COOKIE, path="/")
    if wants_json():
        return reply(True, "signed out")
    bottle.redirect("/login", 303)
