"""Only the operator acts as the operator: the dashboard tried as an attacker on the host would.

The attacker is a real uid `nobody` process speaking HTTP to the real hive-web (any agent
on the host network is in the same place); the operator signs in with `hivectl login`
links or the password. Every test checks what the hive did, not only the status codes.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.attacker import HTTP, Background, as_nobody
from tests.browser.webtest import RunningWeb, SSEReader, WebClient
from tests.hivetest import RunningHive, hivectl
from tests.integration.flowtools import commit_file, config_text

PASSWORD = "correct horse battery staple"


@pytest.fixture
def web(hive: RunningHive, env: dict[str, str]) -> Iterator[RunningWeb]:
    os.chmod(env["HIVE_RUNTIME_DIR"], 0o751)  # as /run/hyperhive: others may reach a socket
    running = RunningWeb(env, HIVE_WEB_REQUEST_TIMEOUT="2")
    yield running
    running.stop()


def admin(hive: RunningHive, cmd: str, **fields: Any) -> dict[str, Any]:
    with hive.admin() as a:
        return a.call(cmd, **fields)


def pending_apply(hive: RunningHive, name: str = "alice") -> int:
    """hm1nd asks for a config change of `name`: the approval an attacker wants to pass."""
    admin(hive, "spawn", name=name)
    repo = hive.paths.proposed_repo(name)
    sha = commit_file(repo, "agent.toml", config_text('model = "claude-opus-4-1"\n'), "m")
    with hive.manager() as m:
        return int(m.call("request_apply_commit", agent=name, commit_ref=sha)["id"])


def db(hive: RunningHive) -> sqlite3.Connection:
    return sqlite3.connect(hive.paths.db, timeout=10)


def status_of(hive: RunningHive, approval: int) -> str:
    rows = admin(hive, "pending", all=True)["approvals"]
    return str(next(a["status"] for a in rows if a["id"] == approval))


def test_nobody_on_the_host_cannot_approve_spawn_or_read(
    hive: RunningHive, web: RunningWeb
) -> None:
    approval = pending_apply(hive)
    got = as_nobody(
        HTTP
        + """
out = {"index": req("GET", "/"), "login": req("GET", "/login")}
out["cookies"] = sorted(jar)
out["approve"] = post(f"/approve/{sys.argv[2]}", {})
out["spawn"] = post("/spawn", {"name": "mallory"})
out["send"] = post("/send/alice", {"body": "do as I say"})
out["model"] = post("/api/model", {"name": "alice", "model": "claude-opus-4-1"})
out["page"] = req("GET", "/agent/alice")
out["events"] = req("GET", "/api/events?topic=index", headers={"Accept": "text/event-stream"})
out["journal"] = req("GET", "/api/journal/alice")
out["pending"] = req("GET", "/api/model?name=alice")
out["guess"] = post("/login", {"password": "hunter2hunter2"})
out["forged"] = req("GET", "/", headers={"Cookie": "hive_session=" + "A" * 43})
import socket
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[3])
    out["admin_socket"] = "connected"
except OSError as e:
    out["admin_socket"] = e.strerror
print(json.dumps(out))
""",
        str(web.port),
        str(approval),
        str(hive.paths.admin_socket),
    )
    assert got["index"]["status"] == 303 and got["index"]["location"].endswith("/login")
    assert got["login"]["status"] == 200 and "hivectl login" in got["login"]["body"]
    assert "hive_session" not in got["cookies"]  # the sign-in page hands out no session
    for what in ("approve", "spawn", "send", "model", "events", "journal", "pending"):
        assert got[what]["status"] == 401, (what, got[what])
        assert "hivectl login" in got[what]["body"], what
    assert got["page"]["status"] == 303
    assert got["guess"]["status"] == 401 and "no dashboard password is set" in got["guess"]["body"]
    assert got["forged"]["status"] == 303
    assert got["admin_socket"] == "Permission denied"
    for reply in got.values():  # no data leaked into any refusal
        if isinstance(reply, dict):
            assert "claude-opus-4-1" not in reply["body"] and "hm1nd" not in reply["body"]
    assert status_of(hive, approval) == "pending"
    names = {a["name"] for a in admin(hive, "list")["agents"]}
    assert names == {"hm1nd", "alice"}
    with hive.agent("alice") as alice:
        assert alice.call("recv", wait_seconds=0)["message"] is None


def test_the_operators_link_signs_in_once_and_decisions_name_the_session(
    hive: RunningHive, web: RunningWeb, env: dict[str, str]
) -> None:
    approval = pending_apply(hive)
    out = hivectl(env, "--json", "login")
    assert out.returncode == 0, out.stderr
    link = json.loads(out.stdout)
    assert link["valid_seconds"] == 120 and "/login/" in link["url"]
    browser = web.anonymous()
    first = browser.login(link["url"])
    assert "session #" in first.text
    cookie = first.headers["set-cookie"]
    assert "HttpOnly" in cookie and "samesite=strict" in cookie.lower()
    assert "Secure" not in cookie  # plain http on loopback
    session = int(first.text.split("session #", 1)[1].split(".", 1)[0])

    other = web.anonymous()
    again = other.get("/" + link["url"].split("/", 3)[3])
    assert again.status == 401 and "used already" in again.text
    assert "hive_session" not in other.cookies

    ok = browser.post(f"/approve/{approval}")
    assert ok.status == 200 and ok.json()["ok"], ok.text
    row = next(a for a in admin(hive, "pending", all=True)["approvals"] if a["id"] == approval)
    assert row["decided_by"].startswith(f"dashboard session #{session}, uid ")

    second = pending_apply(hive, "bob")
    out = hivectl(env, "deny", str(second), "--note", "not now")
    assert out.returncode == 0, out.stderr
    row = next(a for a in admin(hive, "pending", all=True)["approvals"] if a["id"] == second)
    assert row["decided_by"] == f"hivectl, uid {os.getuid()} (root)"


def test_stale_garbage_and_expired_links_open_nothing(hive: RunningHive, web: RunningWeb) -> None:
    url = admin(hive, "login_link")["url"]
    with db(hive) as conn:
        conn.execute("UPDATE login_links SET expires_at = expires_at - 121")
    c = web.anonymous()
    expired = c.get("/" + url.split("/", 3)[3])
    assert expired.status == 401 and "expired" in expired.text
    for bad in ("A" * 43, "x", "../../etc/passwd", "%00" * 20, "%C3%A9" * 43):
        reply = c.get("/login/" + bad)
        assert reply.status in (401, 404), (bad, reply.status)
    assert "hive_session" not in c.cookies
    with db(hive) as conn:
        assert conn.execute("SELECT COUNT(*) FROM web_sessions").fetchone()[0] == 0


def test_the_csrf_token_belongs_to_one_session(hive: RunningHive, web: RunningWeb) -> None:
    admin(hive, "spawn", name="alice")
    a, b = web.client(), web.client()
    assert a.csrf and b.csrf and a.csrf != b.csrf
    a_token = a.csrf
    a.csrf = b.csrf
    crossed = a.post("/send/alice", {"body": "with the other session's token"})
    assert crossed.status == 403 and "CSRF" in crossed.json()["message"]
    a.csrf = a_token
    assert a.post("/send/alice", {"body": "mine"}).json()["ok"]
    with hive.agent("alice") as alice:
        got = alice.call("recv", wait_seconds=0)["message"]
        assert got["body"] == "mine" and alice.call("recv", wait_seconds=0)["message"] is None


def test_password_sign_in_is_hashed_and_rate_limited(
    hive: RunningHive, web: RunningWeb, env: dict[str, str]
) -> None:
    short = hivectl(env, "passwd", "--stdin", input_text="short\n")
    assert short.returncode == 1 and "at least 12" in short.stderr
    out = hivectl(env, "passwd", "--stdin", input_text=PASSWORD + "\n")
    assert out.returncode == 0, out.stderr
    stored = hive.paths.web_password
    assert stored.stat().st_mode & 0o777 == 0o600
    text = stored.read_text()
    assert text.startswith("scrypt$32768$8$1$") and PASSWORD not in text

    c = web.anonymous()
    c.get("/login")
    signed = c.post("/login", {"password": PASSWORD, "csrf": c.cookies["hive_csrf"]})
    assert signed.status == 200 and "hive_session" in c.cookies
    c.get("/")
    assert c.get("/agent/hm1nd").status == 200

    guesser = web.anonymous()
    guesser.get("/login")
    replies = [
        guesser.post(
            "/login", {"password": f"guess number {i}", "csrf": guesser.cookies["hive_csrf"]}
        )
        for i in range(6)
    ]
    assert [r.status for r in replies[:5]] == [401] * 5
    assert all("not the dashboard password" in r.text for r in replies[:5])
    assert "too many failed sign-ins" in replies[5].text
    late = guesser.post("/login", {"password": PASSWORD, "csrf": guesser.cookies["hive_csrf"]})
    assert late.status == 401 and "too many failed sign-ins" in late.text  # even the right one
    assert "hive_session" not in guesser.cookies

    cleared = hivectl(env, "passwd", "--clear")
    assert cleared.returncode == 0 and not stored.exists()


def test_logout_all_ends_every_session_and_live_stream(
    hive: RunningHive, web: RunningWeb, env: dict[str, str]
) -> None:
    a, b = web.client(), web.client()
    stream = SSEReader("127.0.0.1", web.port, "/api/events?topic=index", a.cookies)
    try:
        assert stream.status == 200
        assert stream.event()[0] == "patch"  # the first frame: the whole state
        out = hivectl(env, "logout-all")
        assert out.returncode == 0 and "ended 2 dashboard session" in out.stdout, out.stdout
        with pytest.raises(EOFError):  # the stream ends with its session, not at a heartbeat
            stream.event(timeout=10)
    finally:
        stream.close()
    for c in (a, b):
        assert c.get("/").status == 303
        assert c.post("/send/hm1nd", {"body": "after logout"}).status == 401
    # and a link made before, unused, is void too
    url = admin(hive, "login_link")["url"]
    hivectl(env, "logout-all")
    assert web.anonymous().get("/" + url.split("/", 3)[3]).status == 401


def test_sign_out_and_idle_sessions_end(hive: RunningHive, web: RunningWeb) -> None:
    c = web.client()
    assert c.post("/logout").status == 200
    assert c.get("/").status == 303
    idle = web.client()
    assert idle.get("/").status == 200
    with db(hive) as conn:
        conn.execute("UPDATE web_sessions SET last_seen = last_seen - idle_seconds - 1")
    assert idle.get("/").status == 303


def test_live_streams_are_capped_per_session(hive: RunningHive, web: RunningWeb) -> None:
    c = web.client()
    streams: list[SSEReader] = []
    try:
        for _ in range(6):
            streams.append(SSEReader("127.0.0.1", web.port, "/api/events?topic=index", c.cookies))
            assert streams[-1].status == 200
        extra = SSEReader("127.0.0.1", web.port, "/api/events?topic=index", c.cookies)
        streams.append(extra)
        assert extra.status == 503
        other = web.client()  # another session still gets its streams
        streams.append(SSEReader("127.0.0.1", web.port, "/api/events?topic=index", other.cookies))
        assert streams[-1].status == 200
        assert c.get("/").status == 200  # and pages are still served
    finally:
        for s in streams:
            s.close()


def test_slow_and_silent_connections_from_nobody_do_not_shut_the_operator_out(
    hive: RunningHive, web: RunningWeb
) -> None:
    flood = Background(
        """
import json, selectors, socket, sys, time
port, n = int(sys.argv[1]), 300
socks = []
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    if i % 2:
        s.sendall(b"GET / HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\nX-Slow: ")  # never finished
    socks.append(s)
print(json.dumps({"opened": len(socks)}), flush=True)
sel = selectors.DefaultSelector()
for s in socks:
    s.setblocking(False)
    sel.register(s, selectors.EVENT_READ)
closed, deadline = 0, time.monotonic() + 60
while closed < n and time.monotonic() < deadline:
    for key, _ in sel.select(deadline - time.monotonic()):
        try:
            data = key.fileobj.recv(65536)
        except OSError:
            data = b""
        if not data:
            sel.unregister(key.fileobj)
            closed += 1
print(json.dumps({"closed": closed}), flush=True)
""",
        str(web.port),
    )
    try:
        assert flood.line()["opened"] == 300
        for _ in range(5):  # each a new connection, among the flood
            page = web.client().get("/")
            assert page.status == 200 and 'id="agent-hm1nd"' in page.text
        assert flood.line(timeout=90)["closed"] == 300  # none outlives its deadline
    finally:
        flood.stop()


def test_anonymous_streams_cannot_take_the_slots(hive: RunningHive, web: RunningWeb) -> None:
    got = as_nobody(
        HTTP
        + """
codes = [req("GET", "/api/events?topic=index")["status"] for _ in range(40)]
print(json.dumps(codes))
""",
        str(web.port),
    )
    assert got == [401] * 40
    c = web.client()
    stream = SSEReader("127.0.0.1", web.port, "/api/events?topic=index", c.cookies)
    try:
        assert stream.status == 200
    finally:
        stream.close()


def test_sessions_survive_a_restart_of_the_dashboard(
    hive: RunningHive, web: RunningWeb, env: dict[str, str]
) -> None:
    c = web.client()
    web.stop()
    again = RunningWeb(env, port=web.port)
    try:
        assert c.get("/").status == 200
        assert WebClient("127.0.0.1", again.port).get("/").status == 303
    finally:
        again.stop()


def test_the_password_file_is_replaced_never_followed(
    hive: RunningHive, env: dict[str, str]
) -> None:
    victim = Path(env["HIVE_STATE_DIR"]).parent / "victim"
    victim.write_text("keep\n")
    hive.paths.web_password.symlink_to(victim)
    out = hivectl(env, "passwd", "--stdin", input_text=PASSWORD + "\n")
    assert out.returncode == 0, out.stderr
    assert victim.read_text() == "keep\n"
    assert not hive.paths.web_password.is_symlink()
    assert hive.paths.web_password.read_text().startswith("scrypt$")
