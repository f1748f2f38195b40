"""The dashboard's routes: each reads the request, runs one admin command, renders one template.

Every route but sign-in and the static files needs a live operator session (`guard` checks
that, and the origin and CSRF of every POST, before a route runs); every change goes through
the admin socket (`Admin`) in the session's name, never to SQLite or a container directly.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import bottle  # type: ignore[import-untyped]
from bottle import HTTPError, request, response  # type: ignore[import-untyped]

from services.hive.names import InvalidName, validate_agent_name
from services.web import auth, guard, journal, pages, security, views
from services.web.admin import SLOW, Refused, Unreachable
from services.web.auth import Visitor
from services.web.context import (
    MAX_FORM,
    BadRequest,
    Context,
    action,
    agent_name,
    audit,
    form_text,
    path_agent,
    refused,
    reply,
    visitor,
    wants_json,
)
from services.web.live import HEARTBEAT, sse

__all__ = ["Context", "build"]

STATIC = Path(__file__).resolve().parent / "static"


# the app -------------------------------------------------------------------------------


def build(ctx: Context) -> bottle.Bottle:
    app = bottle.Bottle(catchall=True)
    app.config["json.enable"] = False
    bottle.BaseRequest.MEMFILE_MAX = MAX_FORM
    settings = ctx.settings

    def login_csrf() -> str:
        """Before sign-in, the CSRF token is a cookie the page repeats (double submit)."""
        value = request.get_cookie(security.CSRF_COOKIE)
        if not value or len(value) < 32 or len(value) > 64:
            value = security.new_csrf_token()
            response.set_cookie(
                security.CSRF_COOKIE, value, path="/", httponly=True, samesite="strict"
            )
        return str(value)

    def secure() -> bool:
        """Cookies are Secure when the browser came over TLS (directly or via the proxy)."""
        if request.urlparts.scheme == "https":
            return True
        host = (request.headers.get("Host") or "").split(":")[0].lower()
        return settings.https and host == settings.public_host

    # pages -----------------------------------------------------------------------------
    def page(topic: str) -> str:
        banner = None if ctx.hub.status.get("live") else ctx.hub.status.get("error")
        rows = ctx.hub.agent_rows()
        return ctx.renderer.page(topic, rows, visitor().csrf, banner)

    def index() -> str:
        return page(pages.INDEX)

    def agent_page(name: str) -> str:
        try:
            name = agent_name(name)
        except InvalidName as e:
            raise HTTPError(404, str(e)) from None
        if not views.agent_exists(name):
            raise HTTPError(404, f"no agent named {name!r}: see the agents on the dashboard")
        return page(pages.agent_topic(name))

    def static(path: str) -> Any:
        return bottle.static_file(path, root=str(STATIC))

    def act(cmd: str, **fields: Any) -> dict[str, Any]:
        """One admin command in the name of the request's session."""
        return ctx.admin.call(cmd, actor=visitor().actor, **fields)

    # signing in and out ----------------------------------------------------------------
    def login_page(error: str | None = None, status: int = 200) -> str:
        response.status = status
        return pages.render("login", csrf=login_csrf(), error=error)

    def login_form() -> Any:
        if request.environ.get("hive.visitor") is not None:
            bottle.redirect("/", 303)
        return login_page()

    def signed_in(opened: dict[str, Any]) -> str:
        response.set_cookie(
            auth.SESSION_COOKIE,
            str(opened["session"]),
            path="/",
            httponly=True,
            samesite="strict",
            secure=secure(),
            max_age=max(1, int(float(opened["expires_at"]) - time.time())),
        )
        # A page that moves on by itself: a SameSite=Strict cookie set by a navigation
        # that began on another site is sent only once the page itself navigates.
        return pages.render("signed_in", session=opened["id"])

    def open_session(**how: Any) -> str:
        try:
            opened = ctx.admin.call("session_open", client=request.remote_addr or "?", **how)
        except Refused as e:
            return login_page(str(e), 401)
        except Unreachable as e:
            return login_page(str(e), 503)
        audit(f"signed in as session #{opened['id']} ({opened['kind']})", None)
        return signed_in(opened)

    def login_link(secret: str) -> str:
        return open_session(link=secret)

    def login_password() -> str:
        password = request.forms.getunicode("password") or ""
        if not password:
            return login_page("type the password, or run `hivectl login` for a link", 400)
        return open_session(password=password[:1024])

    def session_info() -> str:
        who = visitor()
        response.content_type = "application/json"
        return json.dumps({"ok": True, "session": who.session_id})

    def logout() -> Any:
        who = visitor()
        with contextlib.suppress(Refused, Unreachable):
            ctx.admin.call("session_close", id=who.session_id, actor=who.actor)
        response.delete_cookie(auth.SESSION_COOKIE, path="/")
        if wants_json():
            return reply(True, "signed out")
        bottle.redirect("/login", 303)

    # live streams ----------------------------------------------------------------------
    def stream(frames: Iterator[str], release: Callable[[], None]) -> Iterator[str]:
        try:
            yield "retry: 1000\n: " + " " * 2048 + "\n\n"  # defeat proxy buffering at once
            yield from frames
        finally:
            release()

    def take_slot() -> Visitor:
        who = visitor()
        why = ctx.slots.acquire(who.session_id)
        if why is not None:
            raise HTTPError(503, why)
        return who

    def sse_headers() -> None:
        response.content_type = "text/event-stream; charset=utf-8"
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Accel-Buffering"] = "no"

    def events() -> Iterator[str]:
        topic = request.query.getunicode("topic") or pages.INDEX
        agent = pages.topic_agent(topic)
        if topic != pages.INDEX and agent is None:
            raise HTTPError(400, "topic must be 'index' or 'agent:<name>'")
        if agent is not None:
            path_agent(agent)
        who = take_slot()
        try:
            sub = ctx.hub.subscribe(topic, lambda: ctx.doorkeeper.live(who))
        except Exception:
            ctx.slots.release(who.session_id)
            raise

        def frames() -> Iterator[str]:
            while not ctx.stopping.is_set():
                frame = sub.get(HEARTBEAT)
                if frame is None:
                    return
                if not frame and not ctx.doorkeeper.live(who):
                    return  # signed out or revoked: the stream ends with the session
                yield frame or ": beat\n\n"

        def release() -> None:
            ctx.hub.unsubscribe(sub)
            ctx.slots.release(who.session_id)

        sse_headers()
        return stream(frames(), release)

    def journal_recent(name: str) -> str:
        name = path_agent(name)
        lines = request.query.get("lines", "200")
        try:
            entries = journal.recent(ctx.journal, name, int(lines) if lines.isdigit() else 200)
        except journal.JournalUnavailable as e:
            raise HTTPError(503, str(e)) from None
        response.content_type = "application/json"
        return json.dumps({"agent": name, "entries": entries})

    def journal_stream(name: str) -> Iterator[str]:
        name = path_agent(name)
        after = request.headers.get("Last-Event-ID") or request.query.getunicode("after") or None
        who = take_slot()
        try:
            batches = journal.follow(ctx.journal, name, after, ctx.stopping)
        except journal.JournalUnavailable as e:
            ctx.slots.release(who.session_id)
            raise HTTPError(503, str(e)) from None

        def frames() -> Iterator[str]:
            quiet_since = time.monotonic()
            for batch in batches:
                if batch:
                    quiet_since = time.monotonic()
                    yield sse("lines", json.dumps(batch), batch[-1]["cursor"])
                elif time.monotonic() - quiet_since >= HEARTBEAT:
                    if not ctx.doorkeeper.live(who):
                        return
                    quiet_since = time.monotonic()
                    yield ": beat\n\n"

        def release() -> None:
            batches.close()
            ctx.slots.release(who.session_id)

        sse_headers()
        return stream(frames(), release)

    # the model (GET|POST /api/model) ---------------------------------------------------
    def model_get() -> Any:
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
    def model_set() -> tuple[str, dict[str, Any]]:
        name = agent_name(form_text("name") or "")
        model = (form_text("model", required=False, max_len=100) or "").strip()
        value = None if model in ("", "default", "-") else model
        got = act("set_model", name=name, model=value)["model"]
        audit(f"set the model of {name} to {value or 'its default'}", name)
        return f"{name} now uses {got or 'its default model'}", {"name": name, "model": got}

    # approvals and questions -----------------------------------------------------------
    @action
    def approve(aid: int) -> tuple[str, dict[str, Any]]:
        got = act("approve", id=aid, wait=False)["approval"]
        audit(f"approved #{aid}", got.get("agent"), approval=aid)
        what = "spawning" if got.get("kind") == "spawn" else "applying to"
        return f"approval #{aid} approved: {what} {got.get('agent')}", {"approval": got}

    @action
    def deny(aid: int) -> tuple[str, dict[str, Any]]:
        note = form_text("note", required=False, max_len=4000) or None
        got = act("deny", id=aid, note=note)["approval"]
        audit(f"denied #{aid}", got.get("agent"), approval=aid)
        return f"approval #{aid} denied", {"approval": got}

    @action
    def answer(qid: int) -> tuple[str, dict[str, Any]]:
        try:
            chosen = [str(a) for a in request.forms.decode().getall("answer")]
        except UnicodeError:
            raise BadRequest("the answer is not UTF-8 text") from None
        if not chosen or not any(c.strip() for c in chosen):
            raise BadRequest("choose or type an answer first")
        given: str | list[str] = chosen if views.question_is_multi(qid) else chosen[0]
        got = act("answer_question", id=qid, answer=given)["question"]
        audit(f"answered question #{qid}", got.get("asker"), question=qid)
        return f"question #{qid} answered", {"question": got}

    @action
    def cancel_question(qid: int) -> tuple[str, dict[str, Any]]:
        got = act("cancel_question", id=qid)["question"]
        audit(f"cancelled question #{qid}", got.get("asker"), question=qid)
        return f"question #{qid} cancelled", {"question": got}

    # agents ------------------------------------------------------------------------------
    def verb(cmd: str, done: str) -> Callable[..., Any]:
        def run(name: str) -> tuple[str, dict[str, Any]]:
            name = agent_name(name)
            got = act(cmd, name=name, timeout=SLOW)
            audit(f"{cmd} {name}", name)
            if cmd == "rebuild" and not got.get("ok_build", True):
                raise Refused(str(got.get("note") or f"rebuild of {name} failed"))
            return f"{name} {done}", {"result": got}

        run.__name__ = f"verb_{cmd}"
        return action(run)

    @action
    def cancel_turn(name: str) -> tuple[str, dict[str, Any]]:
        name = agent_name(name)
        woken = act("cancel_turn", name=name)["woken"]
        audit(f"cancelled the turn of {name}", name)
        return f"cancel sent to {name}" + ("" if woken else " (no turn was listening)"), {}

    @action
    def spawn() -> tuple[str, dict[str, Any]]:
        name = validate_agent_name(form_text("name", max_len=64), allow_manager=False)
        got = act("spawn", name=name, wait=False)["agent"]
        audit(f"spawned {name}", name)
        return f"spawning {name}", {"agent": got}

    @action
    def update_all() -> tuple[str, dict[str, Any]]:
        stale = views.stale(act("list")["agents"])
        failed = []
        for name in stale:
            got = act("rebuild", name=name, if_stale=True, timeout=SLOW)
            if not got.get("ok_build", True):
                failed.append(name)
        audit(f"updated {len(stale)} containers", None)
        if failed:
            raise Refused(f"rebuilt {len(stale) - len(failed)}; failed: {', '.join(failed)}")
        return f"rebuilt {len(stale)} container{'s' if len(stale) != 1 else ''}", {"rebuilt": stale}

    @action
    def send(name: str) -> tuple[str, dict[str, Any]]:
        name = agent_name(name)
        body = form_text("body") or ""
        got = act("send", to=name, body=body)
        audit(f"sent message #{got['id']} to {name}", name)
        return f"sent to {name}", {"id": got["id"]}

    @action
    def drop(mid: int) -> tuple[str, dict[str, Any]]:
        note = form_text("note", required=False, max_len=4000) or None
        got = act("drop", id=mid, note=note)["message"]
        audit(f"dropped message #{mid}", got.get("recipient"), message_no=mid)
        return f"message #{mid} dropped", {"dropped": got}

    # the route table ---------------------------------------------------------------------
    app.add_hook("before_request", partial(guard.check, ctx))
    app.add_hook("after_request", partial(guard.after, ctx))
    app.default_error_handler = guard.error_page  # type: ignore[method-assign]
    app.route("/", "GET", index)
    app.route("/agent/<name>", "GET", agent_page)
    app.route("/static/<path:path>", "GET", static)
    app.route("/login", "GET", login_form)
    app.route("/login", "POST", login_password)
    app.route("/login/<secret>", "GET", login_link)
    app.route("/logout", "POST", logout)
    app.route("/api/session", "GET", session_info)
    app.route("/api/events", "GET", events)
    app.route("/api/journal/<name>", "GET", journal_recent)
    app.route("/api/journal/<name>/stream", "GET", journal_stream)
    app.route("/api/model", "GET", model_get)
    app.route("/api/model", "POST", model_set)
    app.route("/approve/<aid:int>", "POST", approve)
    app.route("/deny/<aid:int>", "POST", deny)
    app.route("/answer-question/<qid:int>", "POST", answer)
    app.route("/cancel-question/<qid:int>", "POST", cancel_question)
    app.route("/cancel-turn/<name>", "POST", cancel_turn)
    app.route("/spawn", "POST", spawn)
    app.route("/update-all", "POST", update_all)
    app.route("/send/<name>", "POST", send)
    app.route("/drop/<mid:int>", "POST", drop)
    for cmd, done in (
        ("start", "started"),
        ("stop", "stopped"),
        ("restart", "restarted"),
        ("kill", "killed"),
        ("destroy", "destroyed"),
        ("rebuild", "rebuilt"),
    ):
        app.route(f"/{cmd}/<name>", "POST", verb(cmd, done))

    return app
