"""The dashboard's doors, route by route: every POST refuses a cross-site request, and every
route but sign-in, /static and action links (whose secret is the capability) refuses a
visitor without a live operator session.

The routes come from the app itself, so a new route is swept without editing this file.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from hyperhive.web import app as webapp

from tests.browser.webtest import RunningWeb
from tests.hivetest import RunningHive
from tests.integration.test_bad_input_sockets import Sandbox


def routes() -> list[tuple[str, str]]:
    """(method, concrete path) for every route of the dashboard."""
    ctx: Any = SimpleNamespace(settings=SimpleNamespace())
    out = []
    for r in webapp.build(ctx).routes:
        path = re.sub(r"<aid:int>|<qid:int>", "1", r.rule)
        path = path.replace("<path:path>", "favicon.svg").replace("<name>", "alice")
        path = path.replace("<secret>", "alice")
        out.append((r.method, path))
    return sorted(set(out))


POSTS = [p for m, p in routes() if m == "POST"]
GETS = [p for m, p in routes() if m == "GET"]


@pytest.fixture(scope="module")
def hive() -> Iterator[RunningHive]:
    box = Sandbox()
    yield box.hive
    box.close()


def test_the_sweep_sees_every_route() -> None:
    assert {"/approve/1", "/send/alice", "/api/model", "/spawn", "/destroy/alice"} <= set(POSTS)
    assert {"/cap/alice", "/reset-budget/alice"} <= set(POSTS)
    assert len(POSTS) >= 16 and "/api/journal/alice" in GETS and "/login/alice" in GETS


def agents(hive: RunningHive) -> list[dict[str, Any]]:
    with hive.admin() as a:
        rows: list[dict[str, Any]] = a.call("list")["agents"]
        return rows


def test_every_post_refuses_cross_site_requests(hive: RunningHive) -> None:
    web = RunningWeb(hive.env)
    try:
        c = web.client()
        c.get("/")
        before = agents(hive)
        for path in POSTS:
            refused = [
                c.post(path, {"name": "alice", "body": "x"}, csrf=False),
                c.post(path, {"name": "alice"}, csrf=False, **{"X-CSRF-Token": "z" * 43}),
                c.post(path, {"name": "alice"}, origin="http://evil.example"),
                c.post(path, {"name": "alice"}, origin="null"),
                c.post(path, {"name": "alice"}, **{"Sec-Fetch-Site": "cross-site"}),
                c.post(path, {"name": "alice"}, **{"Sec-Fetch-Site": "same-site"}),
                c.post(path, {"name": "alice"}, Host="evil.example", origin=None),
            ]
            if path in ("/login", "/logout"):
                continue  # the same refusals apply; they are not acts on the hive
            for i, reply in enumerate(refused):
                assert reply.status == 403, (path, i, reply.status, reply.text[:200])
                assert reply.json()["ok"] is False and reply.json()["message"]
        after = agents(hive)
        assert [(a["name"], a["state"]) for a in after] == [(a["name"], a["state"]) for a in before]
        with hive.agent("alice") as alice:  # no cross-site message got through
            assert alice.call("recv", wait_seconds=0)["message"] is None
    finally:
        web.stop()


def test_without_a_session_only_sign_in_and_static_answer(hive: RunningHive) -> None:
    web = RunningWeb(hive.env)
    try:
        c = web.anonymous()
        c.get("/login")  # a pre-sign-in CSRF cookie, but no session
        c.csrf = c.cookies["hive_csrf"]  # so each POST passes the CSRF check and meets the session
        for path in POSTS:
            reply = c.post(path, {"name": "alice", "body": "x", "password": "p" * 12})
            if path.startswith("/act/"):  # no session needed, but the link's own token
                assert reply.status == 403 and "CSRF" in reply.text, (path, reply.status)
                continue
            assert reply.status == 401, (path, reply.status, reply.text[:200])
            if path != "/login":
                assert "hivectl login" in reply.json()["message"], path
        for path in GETS:
            page = c.get(path)
            if path == "/login" or path.startswith("/static/"):
                assert page.status == 200, path
                continue
            if path.startswith("/login/"):
                assert page.status == 401 and "hive_session" not in c.cookies, path
                continue
            if path.startswith("/act/"):  # a link the hive never made: it says so, no more
                assert page.status == 403 and "not one the hive made" in page.text, path
                assert "hm1nd" not in page.text and "<form" not in page.text, path
                continue
            assert page.status in (303, 401), (path, page.status)
            assert "alice" not in page.text and "hm1nd" not in page.text, path
            assert c.get(path, Accept="application/json").status == 401, path
        with hive.agent("alice") as alice:
            assert alice.call("recv", wait_seconds=0)["message"] is None
        assert all(a["state"] == "running" for a in agents(hive))
    finally:
        web.stop()
