"""How hive-web serves: bind policy, operator token, socket activation, READY, the journal API."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.browser.webtest import (
    PrivateJournal,
    RunningWeb,
    SSEReader,
    WebClient,
    free_port,
)
from tests.browser.webtest import private_journal as private_journal  # the shared fixture
from tests.hivetest import REPO, RunningHive, running_hive


def run_web(env: dict[str, str], timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hyperhive.web"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_a_taken_port_fails_loudly_and_names_it(hive: RunningHive, env: dict[str, str]) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        started = time.monotonic()
        out = run_web({**env, "HIVE_WEB_LISTEN": f"127.0.0.1:{port}", "HIVE_WEB_BIND_RETRY": "1"})
        waited = time.monotonic() - started
    assert out.returncode == 1
    assert f"port {port} on 127.0.0.1 is already in use" in out.stderr
    assert "does not pick another port" in out.stderr
    assert waited >= 1.0  # it retried before giving up


def test_bind_retry_wins_when_the_port_frees_up(hive: RunningHive, env: dict[str, str]) -> None:
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    web = RunningWeb(env, port=port, wait=False, HIVE_WEB_BIND_RETRY="60")
    try:
        # free the port only once hive-web has found it busy and is retrying
        wait_for(lambda: f"port {port} on 127.0.0.1 is busy; retrying for 60 s" in web.log(), 60)
        holder.close()
        web.wait_ready(timeout=60)
        assert web.client().get("/").status == 200
    finally:
        web.stop()
        holder.close()


def test_a_non_loopback_bind_needs_a_public_url(env: dict[str, str]) -> None:
    port = free_port()
    out = run_web({**env, "HIVE_WEB_LISTEN": f"0.0.0.0:{port}"})
    assert out.returncode == 1 and "HIVE_WEB_PUBLIC_URL" in out.stderr and "0.0.0.0" in out.stderr
    # As in /etc/hyperhive/hive.env, both services read the same settings.
    env = {
        **env,
        "HIVE_WEB_LISTEN": f"0.0.0.0:{port}",
        "HIVE_WEB_PUBLIC_URL": "https://hive.example.org",
    }
    with running_hive(env) as hive:
        web = RunningWeb(env, port=port)
        try:
            anonymous = web.anonymous()
            first = anonymous.get("/")
            assert first.status == 303 and first.headers["location"].endswith("/login")
            assert anonymous.get("/api/model?name=hm1nd").status == 401
            assert anonymous.get("/", Host="hive.example.org").status == 303
            assert anonymous.get("/", Host="evil.example").status == 403
            with hive.admin() as a:
                link = a.call("login_link")["url"]
            assert link.startswith("https://hive.example.org/login/")  # where operators go
            opened = anonymous.get("/" + link.split("/", 3)[3], Host="hive.example.org")
            assert opened.status == 200
            cookie = opened.headers["set-cookie"]
            assert (
                "HttpOnly" in cookie and "samesite=strict" in cookie.lower() and "Secure" in cookie
            )
        finally:
            web.stop()


def test_loopback_refuses_other_host_names(hive: RunningHive, env: dict[str, str]) -> None:
    web = RunningWeb(env)
    try:
        c = web.client()
        assert c.get("/", Host=f"localhost:{web.port}").status == 200
        refused = c.get("/", Host="attacker.example")
        assert refused.status == 403 and "loopback" in refused.text
    finally:
        web.stop()


@pytest.mark.skipif(
    shutil.which("systemd-socket-activate") is None,
    reason="systemd-socket-activate (Debian package systemd) is not installed",
)
def test_socket_activation_and_ready(
    hive: RunningHive, env: dict[str, str], tmp_path: Path
) -> None:
    port = free_port()
    notify_path = tmp_path / "notify.sock"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(notify_path))
    notify.settimeout(20)
    busy = socket.socket()  # HIVE_WEB_LISTEN points at a taken port: it must not be used
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    child_env = {
        **env,
        "NOTIFY_SOCKET": str(notify_path),
        "HIVE_WEB_LISTEN": f"127.0.0.1:{busy.getsockname()[1]}",
        "HIVE_WEB_BIND_RETRY": "0",
    }
    passed = [arg for key in sorted(child_env) for arg in ("-E", key)]  # it passes only these
    proc = subprocess.Popen(
        [
            "systemd-socket-activate",
            "-l",
            f"127.0.0.1:{port}",
            "--fdname=web",
            *passed,
            sys.executable,
            "-m",
            "hyperhive.web",
        ],
        env=child_env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 10
        while True:  # the socket exists before hive-web runs: the first connection starts it
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                assert time.monotonic() < deadline, "systemd-socket-activate did not listen"
                time.sleep(0.05)
        try:
            got = notify.recv(4096).decode()
        except TimeoutError:
            os.kill(proc.pid, 15)
            raise AssertionError(f"no READY=1: {proc.communicate(timeout=10)[1]!r}") from None
        assert "READY=1" in got and f"127.0.0.1:{port}" in got
        c = WebClient("127.0.0.1", port)
        assert c.get("/").status == 303  # to the sign-in page
        with hive.admin() as a:
            c.login(a.call("login_link")["url"])
        assert c.get("/").status == 200
    finally:
        os.kill(proc.pid, 15)
        proc.wait(10)
        assert proc.stderr is not None
        proc.stderr.close()
        notify.close()
        busy.close()


def wait_for(predicate: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_journal_api_reads_and_follows_a_real_journald(
    hive: RunningHive, env: dict[str, str], private_journal: PrivateJournal
) -> None:
    for i in range(3):
        private_journal.send(f"alice line {i}", HIVE_AGENT="alice", SYSLOG_IDENTIFIER="hive-agent")
    private_journal.send("about bob", HIVE_AGENT="bob", SYSLOG_IDENTIFIER="hive-coordinator")
    private_journal.send("from the unit", _SYSTEMD_UNIT="ignored", SYSLOG_IDENTIFIER="x")
    web = RunningWeb(env, HIVE_WEB_JOURNAL_NAMESPACE=private_journal.namespace)
    try:
        c = web.client()

        def recent() -> list[dict[str, object]]:
            entries: list[dict[str, object]] = c.get("/api/journal/alice?lines=2").json()["entries"]
            return entries

        wait_for(lambda: len(recent()) == 2)
        entries = recent()
        assert [e["msg"] for e in entries] == ["alice line 1", "alice line 2"]
        assert entries[0]["ident"] == "hive-agent" and entries[0]["prio"] == 6
        sse = SSEReader(
            "127.0.0.1",
            web.port,
            f"/api/journal/alice/stream?after={entries[-1]['cursor']}",
            c.cookies,
        )
        try:
            assert sse.status == 200
            private_journal.send(
                "about alice", HIVE_AGENT="alice", SYSLOG_IDENTIFIER="hive-coordinator"
            )
            private_journal.send("<script>x</script>", HIVE_AGENT="alice", PRIORITY="3")
            got: list[dict[str, object]] = []
            while len(got) < 2:
                event, data = sse.event(timeout=10)
                assert event == "lines"
                got += json.loads(data)
            assert [e["msg"] for e in got] == ["about alice", "<script>x</script>"]
            assert got[0]["ident"] == "hive-coordinator" and got[1]["prio"] == 3
        finally:
            sse.close()
        assert c.get("/api/journal/Bad").status == 400
    finally:
        web.stop()


def test_journal_api_says_why_when_the_journal_cannot_be_read(
    hive: RunningHive, env: dict[str, str], tmp_path: Path
) -> None:
    # a `systemd` package without systemd-python's `journal`, ahead of the real one
    stub = tmp_path / "without-systemd-python"
    (stub / "systemd").mkdir(parents=True)
    (stub / "systemd" / "__init__.py").write_text("")
    web = RunningWeb(env, PYTHONPATH=f"{stub}:{env['PYTHONPATH']}")
    try:
        c = web.client()
        for path in ("/api/journal/hm1nd", "/api/journal/hm1nd/stream"):
            reply = c.get(path)
            assert reply.status == 503, (path, reply.status, reply.text[:300])
            message = reply.json()["message"]
            assert message.startswith("systemd-python is not installed ("), (path, message)
        assert c.get("/").status == 200  # the rest of the dashboard is served
    finally:
        web.stop()


def test_journal_api_reads_a_namespace_without_a_journal_as_empty(
    hive: RunningHive, env: dict[str, str]
) -> None:
    web = RunningWeb(env, HIVE_WEB_JOURNAL_NAMESPACE="no-such-namespace-here")
    try:
        reply = web.client().get("/api/journal/hm1nd")
        assert reply.status == 200
        assert reply.json() == {"agent": "hm1nd", "entries": []}
    finally:
        web.stop()
