"""The dashboard's routes called one by one, with no server: a fake `Context` (a stub admin
socket that records each command and answers from a script) and bottle's request bound to
a hand-made WSGI environ. The integration tests drive the same routes over HTTP."""

from __future__ import annotations

import ast
import io
import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import bottle
import pytest
from hyperhive.hive.vocab import Code
from hyperhive.web import actions, app, guard, pageviews, signin, streams
from hyperhive.web.admin import Refused, Unreachable
from hyperhive.web.auth import Visitor
from hyperhive.web.context import BadRequest, Context, form_text

OPERATOR = Visitor(7, "s" * 43)
OTHER = Visitor(8, "t" * 43)


class StubAdmin:
    """The admin socket: records every command, answers with the next scripted reply."""

    def __init__(self, *replies: dict[str, Any] | Exception) -> None:
        self.replies = list(replies)
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def call(self, cmd: str, *, timeout: float = 30.0, **fields: Any) -> dict[str, Any]:
        self.calls.append((cmd, fields))
        got = self.replies.pop(0)
        if isinstance(got, Exception):
            raise got
        return got


class StubDoorkeeper:
    """Knows one session: `who`, whatever cookie is sent (None: nobody is signed in)."""

    def __init__(self, who: Visitor | None) -> None:
        self.who = who

    def visitor(self, cookie: str | None) -> Visitor | None:
        return self.who

    def live(self, who: Visitor) -> bool:
        return who == self.who


def fake_context(*replies: dict[str, Any] | Exception, who: Visitor | None = None) -> Any:
    return Context(
        settings=SimpleNamespace(public_host=None, https=False),
        admin=StubAdmin(*replies),
        hub=SimpleNamespace(rows=SimpleNamespace(invalidate=lambda: None)),
        renderer=None,
        journal=None,
        slots=None,
        doorkeeper=StubDoorkeeper(who),
    )


def bind(
    method: str,
    url: str,
    body: bytes = b"",
    *,
    who: Visitor | None = None,
    accept: str = "application/json",
    **headers: str,
) -> dict[str, Any]:
    """Make `url` the current request (as the guard leaves it when `who` is signed in)."""
    path, _, query = url.partition("?")
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "7800",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "CONTENT_TYPE": "application/x-www-form-urlencoded",
        "CONTENT_LENGTH": str(len(body)),
        "HTTP_HOST": "127.0.0.1:7800",
        "HTTP_ACCEPT": accept,
    }
    for name, value in headers.items():
        environ["HTTP_" + name.upper()] = value
    if who is not None:
        environ["hive.visitor"] = who
    bottle.request.bind(environ)
    bottle.response.bind()
    return environ


@pytest.fixture(autouse=True)
def quiet(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("HIVE_LOG", "stderr")  # the audit lines go to stderr, not the journal
    yield
    bottle.request.bind({})
    bottle.response.bind()


def answered(body: str) -> tuple[int, dict[str, Any]]:
    got: dict[str, Any] = json.loads(body)
    return bottle.response.status_code, got


# actions -------------------------------------------------------------------------------


def test_an_action_runs_one_command_in_the_sessions_name() -> None:
    ctx = fake_context({"approval": {"id": 3, "agent": "alice", "kind": "apply_commit"}})
    bind("POST", "/approve/3", who=OPERATOR)
    status, got = answered(actions.approve(ctx, 3))
    assert status == 200
    assert got["ok"] and got["message"] == "approval #3 approved: applying to alice"
    assert ctx.admin.calls == [("approve", {"id": 3, "wait": False, "actor": OPERATOR.actor})]


@pytest.mark.parametrize(
    ("refusal", "status", "code"),
    [
        (Refused("no approval #3: see hivectl approvals", Code.NOT_FOUND), 404, "not_found"),
        (Refused("approval #3 is already denied", Code.CONFLICT), 409, "conflict"),
        (Refused("approval #3 is stale: ask for a new one", Code.STALE), 409, "stale"),
        (Refused("denied to this caller", Code.FORBIDDEN), 403, "forbidden"),
        (Unreachable("cannot reach the hive: is the coordinator running?"), 503, "unavailable"),
    ],
)
def test_an_actions_refusal_is_its_codes_status(refusal: Exception, status: int, code: str) -> None:
    ctx = fake_context(refusal)
    bind("POST", "/deny/3", b"note=too+wide", who=OPERATOR)
    got_status, got = answered(actions.deny(ctx, 3))
    assert (got_status, got) == (status, {"ok": False, "message": str(refusal), "code": code})
    assert ctx.admin.calls == [("deny", {"id": 3, "note": "too wide", "actor": OPERATOR.actor})]


def test_form_text_refuses_bytes_that_are_not_utf8() -> None:
    bind("POST", "/deny/3", b"note=%FF%FE", who=OPERATOR)
    with pytest.raises(BadRequest, match="field 'note' is not UTF-8 text"):
        form_text("note")
    ctx = fake_context()
    status, got = answered(actions.deny(ctx, 3))
    assert (status, got["code"]) == (400, "invalid") and ctx.admin.calls == []


def test_a_bad_agent_name_is_refused_before_any_command() -> None:
    ctx = fake_context()
    bind("POST", "/send/Bad%20Name", b"body=hi", who=OPERATOR)
    status, got = answered(actions.send(ctx, "Bad Name"))
    assert (status, got["code"]) == (400, "invalid") and ctx.admin.calls == []
    bind("GET", "/api/journal/..", who=OPERATOR)
    with pytest.raises(bottle.HTTPError) as e:
        streams.journal_recent(ctx, "..")
    assert e.value.status_code == 400


def test_a_failed_rebuild_is_a_conflict_naming_why() -> None:
    ctx = fake_context({"ok_build": False, "note": "the build of alice failed: see its journal"})
    bind("POST", "/rebuild/alice", who=OPERATOR)
    status, got = answered(actions.lifecycle(ctx, "rebuild", "alice"))
    assert (status, got["code"]) == (409, "conflict")
    assert got["message"] == "the build of alice failed: see its journal"
    assert ctx.admin.calls == [("rebuild", {"name": "alice", "actor": OPERATOR.actor})]


def test_a_plain_form_post_goes_back_where_it_came_from() -> None:
    ctx = fake_context({"woken": True})
    bind(
        "POST",
        "/cancel-turn/alice",
        who=OPERATOR,
        accept="text/html",
        referer="http://127.0.0.1:7800/agent/alice",
    )
    with pytest.raises(bottle.HTTPResponse) as e:
        actions.cancel_turn(ctx, "alice")
    assert e.value.status_code == 303
    assert e.value.headers["Location"] == "http://127.0.0.1:7800/agent/alice"


# the guard and the session -------------------------------------------------------------


def test_a_post_without_a_session_is_refused() -> None:
    ctx = fake_context()
    bind("POST", "/approve/3")
    with pytest.raises(bottle.HTTPError) as e:
        guard.check(ctx)
    assert e.value.status_code == 401 and "sign in first" in str(e.value.body)
    bind("POST", "/approve/3")  # a route reached without the guard refuses the same way
    with pytest.raises(bottle.HTTPError) as e:
        actions.approve(ctx, 3)
    assert e.value.status_code == 401 and ctx.admin.calls == []


def test_a_page_without_a_session_goes_to_sign_in() -> None:
    bind("GET", "/", accept="text/html")
    with pytest.raises(bottle.HTTPResponse) as e:
        guard.check(fake_context())
    assert e.value.status_code == 303 and e.value.headers["Location"].endswith("/login")
    bind("GET", "/login", accept="text/html")
    guard.check(fake_context())  # sign-in itself is public


def test_a_post_needs_its_own_sessions_csrf_token() -> None:
    ctx = fake_context(who=OPERATOR)
    bind("POST", "/approve/3", x_csrf_token=OTHER.csrf)
    with pytest.raises(bottle.HTTPError) as e:
        guard.check(ctx)
    assert e.value.status_code == 403 and "CSRF" in str(e.value.body)
    environ = bind("POST", "/approve/3", x_csrf_token=OPERATOR.csrf)
    guard.check(ctx)
    assert environ["hive.visitor"] == OPERATOR


def test_a_cross_site_post_is_refused_before_the_session_is_read() -> None:
    ctx = fake_context(who=OPERATOR)
    bind("POST", "/approve/3", x_csrf_token=OPERATOR.csrf, origin="http://evil.example")
    with pytest.raises(bottle.HTTPError) as e:
        guard.check(ctx)
    assert e.value.status_code == 403 and "hive.visitor" not in bottle.request.environ


def test_session_info_and_sign_out() -> None:
    bind("GET", "/api/session", who=OPERATOR)
    assert json.loads(signin.session_info(fake_context())) == {"ok": True, "session": 7}
    ctx = fake_context({"ok": True})
    bind("POST", "/logout", who=OPERATOR)
    status, got = answered(signin.logout(ctx))
    assert (status, got) == (200, {"ok": True, "message": "signed out"})
    assert ctx.admin.calls == [("session_close", {"id": 7, "actor": OPERATOR.actor})]


# the route table -----------------------------------------------------------------------


def test_app_is_only_the_route_table() -> None:
    tree = ast.parse(Path(app.__file__).read_text())
    nested = [
        n
        for top in tree.body
        if isinstance(top, ast.FunctionDef)
        for n in ast.walk(top)
        if n is not top and isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
    ]
    assert nested == []  # no route is a closure: each can be called alone, as above
    wired = {(r.method, r.rule) for r in app.build(fake_context()).routes}
    assert wired == {(method, rule) for method, rule, _ in app.ROUTES}
    assert ("GET", "/static/<path:path>") in wired and pageviews.static in {
        route for _, _, route in app.ROUTES
    }


# action links ----------------------------------------------------------------------------

LINK_SECRET = "L" * 43


def test_an_action_link_post_needs_the_links_token_not_a_session() -> None:
    from hyperhive.hive import actionlinks

    path = f"/act/{LINK_SECRET}"
    bind("POST", path, x_csrf_token=actionlinks.form_token(LINK_SECRET))
    guard.check(fake_context())  # no session, the link's token: let through to the route
    bind("POST", path, x_csrf_token=OPERATOR.csrf)
    with pytest.raises(bottle.HTTPError) as e:  # a session's token is not the link's
        guard.check(fake_context(who=OPERATOR))
    assert e.value.status_code == 403 and "CSRF" in str(e.value.body)
    bind("POST", path, x_csrf_token=actionlinks.form_token("M" * 43))
    with pytest.raises(bottle.HTTPError):  # nor is another link's
        guard.check(fake_context())
    assert guard.shown_path(path) == "/act/…"  # the journal never shows the secret


def test_an_action_link_post_is_one_redeem_and_a_refusal_keeps_its_code() -> None:
    from hyperhive.web import actionpage

    done = {"message": "approval #3 approved", "approval": {"id": 3, "agent": "alice"}}
    ctx = fake_context(done)
    body = b"csrf=tok&action=approve&note=&answer=blue&answer=red"
    bind("POST", f"/act/{LINK_SECRET}", body)
    status, got = answered(actionpage.confirm(ctx, LINK_SECRET))
    assert status == 200 and got["ok"] and got["message"] == "approval #3 approved"
    assert ctx.admin.calls == [
        (
            "action_redeem",
            {
                "secret": LINK_SECRET,
                "token": "tok",
                "action": "approve",
                "note": None,
                "answer": ["blue", "red"],
                "actor": "action link page",
            },
        )
    ]
    ctx = fake_context(Refused("this link was used already: each link works once", Code.CONFLICT))
    bind("POST", f"/act/{LINK_SECRET}", b"csrf=tok&action=approve")
    status, got = answered(actionpage.confirm(ctx, LINK_SECRET))
    assert (status, got["ok"]) == (409, False) and "used already" in got["message"]
