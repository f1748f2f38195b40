"""The dashboard's routes against a real coordinator and a real hive-web process."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.webtest import RunningWeb, SSEReader
from tests.hivetest import RunningHive, spawn
from tests.integration.flowtools import commit_file, config_text


@pytest.fixture
def web(hive: RunningHive, env: dict[str, str]) -> Iterator[RunningWeb]:
    running = RunningWeb(env)
    yield running
    running.stop()


def request_apply(hive: RunningHive, name: str, extra: str) -> int:
    sha = commit_file(
        hive.paths.proposed_repo(name), "agent.toml", config_text(extra), f"change {name}"
    )
    with hive.manager() as m:
        return int(m.call("request_apply_commit", agent=name, commit_ref=sha)["id"])


def admin(hive: RunningHive, cmd: str, **fields: Any) -> dict[str, Any]:
    with hive.admin() as a:
        return a.call(cmd, **fields)


def test_pages_render_and_escape_agent_text(hive: RunningHive, web: RunningWeb) -> None:
    spawn(hive, "alice")
    admin(hive, "send", to="alice", body="<script>alert('x')</script> & <b>bold</b>")
    c = web.client()
    index = c.get("/")
    assert index.status == 200
    assert 'id="agent-alice"' in index.text and 'id="agent-hm1nd"' in index.text
    assert "script-src 'self'" in index.headers["content-security-policy"]
    assert index.headers["x-frame-options"] == "DENY"
    page = c.get("/agent/alice")
    assert page.status == 200
    assert (
        "&lt;script&gt;alert(&#039;x&#039;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;"
        in page.text
    )
    assert "<script>alert" not in page.text
    assert c.get("/agent/nobody").status == 404
    assert c.get("/agent/..%2Fetc").status == 404


def test_every_post_refuses_cross_site_requests(hive: RunningHive, web: RunningWeb) -> None:
    spawn(hive, "alice")
    c = web.client()
    c.get("/")
    refused = [
        c.post("/send/alice", {"body": "no token"}, csrf=False),
        c.post("/send/alice", {"body": "wrong token"}, csrf=False, **{"X-CSRF-Token": "x" * 43}),
        c.post("/send/alice", {"body": "other origin"}, origin="http://evil.example"),
        c.post("/send/alice", {"body": "fetch metadata"}, **{"Sec-Fetch-Site": "cross-site"}),
        c.post("/send/alice", {"body": "same site"}, **{"Sec-Fetch-Site": "same-site"}),
        c.post("/send/alice", {"body": "rebinding"}, Host="evil.example:80", origin=None),
        c.post("/api/model", {"name": "alice", "model": "claude-opus-4-1"}, csrf=False),
    ]
    for reply in refused:
        assert reply.status == 403, reply.text
        assert reply.json()["ok"] is False
    assert "cross-site request refused" in refused[2].json()["message"]
    ok = c.post("/send/alice", {"body": "hello"}, **{"Sec-Fetch-Site": "same-origin"})
    assert ok.status == 200 and ok.json()["ok"]
    with hive.agent("alice") as a:
        got = a.call("recv", wait_seconds=1)["message"]
        assert got["body"] == "hello" and got["sender"] == "operator"
        assert a.call("recv", wait_seconds=0)["message"] is None


def test_approve_and_deny(hive: RunningHive, web: RunningWeb) -> None:
    spawn(hive, "alice")
    first = request_apply(hive, "alice", 'model = "claude-sonnet-4-5"\n')
    second = request_apply(hive, "alice", 'model = "claude-opus-4-1"\n')
    c = web.client()
    page = c.get("/").text
    assert f'id="approval-{first}"' in page and "+model = &quot;claude-sonnet-4-5&quot;" in page
    assert c.post(f"/approve/{first}").json()["ok"]
    denied = c.post(f"/deny/{second}", {"note": "not <yet>"}).json()
    assert denied["ok"] and denied["approval"]["status"] == "denied"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        rows = {a["id"]: a for a in admin(hive, "pending", all=True)["approvals"]}
        if rows[first]["status"] == "approved":
            break
        time.sleep(0.1)
    assert rows[first]["status"] == "approved"
    assert rows[second]["status"] == "denied" and rows[second]["note"] == "not <yet>"
    again = c.post(f"/approve/{second}")
    assert again.status == 409 and "already denied" in again.json()["message"]
    assert c.post("/approve/999").status == 404  # no such approval: not_found


def test_questions_answer_and_cancel(hive: RunningHive, web: RunningWeb) -> None:
    with hive.manager() as m:
        single = m.call("ask_operator", question="pick", options=["a", "b"])["id"]
        multi = m.call("ask_operator", question="any", options=["x", "y", "z"], multi=True)["id"]
        free = m.call("ask_operator", question="say", ttl_seconds=600)["id"]
        gone = m.call("ask_operator", question="never mind")["id"]
    c = web.client()
    page = c.get("/").text
    assert 'data-deadline="' in page and 'type="checkbox"' in page and 'type="radio"' in page
    assert c.post(f"/answer-question/{single}", {"answer": "b"}).json()["ok"]
    assert c.post(f"/answer-question/{multi}", [("answer", "x"), ("answer", "z")]).json()["ok"]
    assert c.post(f"/answer-question/{free}", {"answer": "élan ✓"}).json()["ok"]
    assert c.post(f"/cancel-question/{gone}").json()["ok"]
    late = c.post(f"/cancel-question/{gone}")
    assert late.status == 409 and "already resolved" in late.json()["message"]
    assert c.post(f"/answer-question/{single}", {}).status == 400
    answers = {q["id"]: q for q in admin(hive, "questions", all=True)["questions"]}
    assert answers[single]["answer"] == "b"
    assert answers[multi]["answer"] == "x, z"
    assert answers[free]["answer"] == "élan ✓"
    assert answers[gone]["answer"] == "[cancelled]"


def test_model_api_and_lifecycle_verbs(hive: RunningHive, web: RunningWeb) -> None:
    spawn(hive, "alice")
    c = web.client()
    got = c.get("/api/model?name=alice").json()
    assert got["ok"] and got["model"] is None
    assert c.post("/api/model", {"name": "alice", "model": "claude-opus-4-1"}).json()["ok"]
    assert c.get("/api/model?name=alice").json()["model"] == "claude-opus-4-1"
    state = hive.paths.agent_state("alice") / "hyperhive-model"
    assert state.read_text().strip() == "claude-opus-4-1"
    bad = c.post("/api/model", {"name": "alice", "model": "not a model!"})
    assert bad.status == 400 and "model" in bad.json()["message"]  # invalid
    assert c.post("/api/model", {"name": "alice", "model": "default"}).json()["model"] is None
    assert c.get("/api/model?name=nobody").status == 404
    for verb, state_after in (("stop", "stopped"), ("start", "running"), ("restart", "running")):
        reply = c.post(f"/{verb}/alice")
        assert reply.json()["ok"], reply.text
        assert admin(hive, "agent_status", name="alice")["agents"][0]["state"] == state_after
    assert c.post("/cancel-turn/alice").json()["ok"]
    assert c.post("/kill/alice").json()["ok"]
    assert admin(hive, "agent_status", name="alice")["agents"][0]["state"] == "stopped"
    assert c.post("/destroy/hm1nd").status == 409
    assert c.post("/destroy/alice").json()["ok"]
    assert [a["name"] for a in admin(hive, "list")["agents"]] == ["hm1nd"]
    assert c.post("/spawn", {"name": "bob"}).json()["ok"]
    assert c.post("/spawn", {"name": "Bad Name"}).status == 400


def test_stale_containers_rebuild_from_the_badge_and_update_all(
    hive: RunningHive, web: RunningWeb
) -> None:
    spawn(hive, "alice", "bob")
    for name in ("alice", "bob"):
        hive.paths.rev_marker(name).write_text("an-older-platform\n")
    c = web.client()
    page = c.get("/").text
    assert 'action="/rebuild/alice"' in page and "UPD4TE 4LL" in page
    assert c.post("/rebuild/alice").json()["ok"]
    result = c.post("/update-all").json()
    assert result["ok"] and result["rebuilt"] == ["bob"]
    assert not any(a["needs_update"] for a in admin(hive, "list")["agents"] if a["name"] != "hm1nd")
    assert "UPD4TE 4LL" not in c.get("/").text


def test_live_updates_push_only_what_changed(hive: RunningHive, web: RunningWeb) -> None:
    spawn(hive, "alice")
    c = web.client()
    c.get("/")
    sse = SSEReader("127.0.0.1", web.port, "/api/events?topic=agent:alice", c.cookies)
    try:
        assert sse.status == 200
        event, data = sse.event()
        first = json.loads(data)
        assert event == "patch" and set(first["sections"]) == {
            "notes",
            "staterow",
            "turn",
            "budget",
            "inbox",
        }
        assert first["status"]["live"] is True
        msg_id = admin(hive, "send", to="alice", body="push me")["id"]
        while True:  # the hub re-renders on the coordinator's change report
            event, data = sse.event(timeout=30)
            patch = json.loads(data)
            inbox = patch.get("sections", {}).get("inbox")
            if inbox and f"msg-{msg_id}" in inbox["html"]:
                break
        assert "push me" in inbox["html"][f"msg-{msg_id}"]
        assert set(inbox["html"]) == {f"msg-{msg_id}"}  # rows already sent are not resent
    finally:
        sse.close()
    bad = SSEReader("127.0.0.1", web.port, "/api/events?topic=agent:Bad", c.cookies)
    assert bad.status == 400
    bad.close()


def test_unreachable_coordinator_shows_a_banner(env: dict[str, str]) -> None:
    from tests.hivetest import running_hive

    with running_hive(env) as hive:
        web = RunningWeb(env)
        c = web.client()  # signed in while the coordinator runs; the session lives in SQLite
    try:
        deadline = time.monotonic() + 10
        page = ""
        while time.monotonic() < deadline:
            page = c.get("/").text
            if 'class="banner"' in page:
                break
            time.sleep(0.2)
        assert 'class="banner"' in page and "coordinator" in page
        assert hive.alive() is False
    finally:
        web.stop()
