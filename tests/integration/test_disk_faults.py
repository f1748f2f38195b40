"""Disk and database faults under a running coordinator: a full disk, a read-only state
dir, a corrupted or locked database, a deleted git repo. Each is refused with one clear
sentence on the socket and in the log; everything else keeps answering; once the fault is
cleared the hive works again, with nothing half-written."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hyperhive.hive.paths import Paths

from tests.browser.webtest import RunningWeb
from tests.hivetest import RunningHive, hivectl

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mount namespaces need root")

DISK_FULL = (
    "the hive database is unavailable (database or disk is full): "
    "the state dir's disk is full: free space, then retry"
)
LOCKED = (
    "the hive database is unavailable (database is locked): "
    "another process holds a lock on it: retry shortly"
)


@pytest.fixture
def tmpfs_hive(env: dict[str, str]) -> Iterator[tuple[RunningHive, Path]]:
    """A coordinator whose state dir is an 8 MiB tmpfs in its own mount namespace; the
    second value is that state dir as seen from here (through /proc/PID/root)."""
    state = env["HIVE_STATE_DIR"]
    os.makedirs(state, exist_ok=True)
    script = (
        f"mount -t tmpfs -o size=8m tmpfs {state} && exec {sys.executable} -m hyperhive.coordinator"
    )
    hive = RunningHive(env, argv=["unshare", "-m", "--propagation", "private", "sh", "-c", script])
    yield hive, Path(f"/proc/{hive.proc.pid}/root{state}")
    hive.stop()


def _in_ns(hive: RunningHive, script: str) -> None:
    subprocess.run(["nsenter", "-t", str(hive.proc.pid), "-m", "sh", "-c", script], check=True)


@needs_root
def test_a_full_disk_refuses_writes_clearly_and_recovers(
    tmpfs_hive: tuple[RunningHive, Path],
) -> None:
    hive, state = tmpfs_hive
    with hive.admin() as a:
        a.call("spawn", name="alice")
        a.call("send", to="alice", body="before")
    filler = state / "filler"
    with open(filler, "wb", buffering=0) as f, pytest.raises(OSError):  # nothing left to flush
        while True:
            f.write(b"x" * 65536)
            f.flush()
    with hive.admin() as a:
        reply = a.request({"cmd": "send", "to": "alice", "body": "y" * 200_000})
        assert not reply["ok"]
        assert reply["error"] == DISK_FULL, reply
        reply = a.request({"cmd": "spawn", "name": "bob"})
        if reply["ok"]:  # the row fitted in SQLite's WAL: then the build fails on the disk
            assert reply["agent"]["state"] == "failed", reply
            note = reply["agent"]["note"]
            assert note.startswith("could not create bob: ") and "No space left" in note, reply
        else:
            assert reply["error"] == DISK_FULL, reply
        assert "rollback" not in str(reply)  # the real cause, not the cleanup's error
        assert a.call("whoami")["name"] == "operator"  # reads still answer
        assert [r["name"] for r in a.call("list")["agents"]][:2] == ["hm1nd", "alice"]
    with hive.agent("alice") as c:  # taking a message is a write too: refused, not lost
        reply = c.request({"cmd": "recv", "wait_seconds": 0})
        assert not reply["ok"] and reply["error"] == DISK_FULL, reply
    assert "database or disk is full" in hive.log()
    filler.unlink()
    with hive.admin() as a:
        a.call("send", to="alice", body="after")
        a.call("spawn", name="carol")
    with hive.agent("alice") as c:  # nothing half-written: exactly the two accepted sends
        assert c.call("recv", wait_seconds=0)["message"]["body"] == "before"
        assert c.call("recv", wait_seconds=0)["message"]["body"] == "after"
        assert c.call("recv", wait_seconds=0)["message"] is None


@needs_root
def test_a_read_only_applied_dir_fails_the_build_clearly_and_messages_still_flow(
    tmpfs_hive: tuple[RunningHive, Path],
) -> None:
    hive, _ = tmpfs_hive
    applied = hive.paths.applied_dir
    with hive.admin() as a:
        a.call("spawn", name="alice")
    _in_ns(hive, f"mount --bind {applied} {applied} && mount -o remount,bind,ro {applied}")
    with hive.admin() as a:
        row = a.call("spawn", name="bob")["agent"]
        assert row["state"] == "failed" and "Read-only file system" in row["note"], row
        rebuilt = a.call("rebuild", name="alice")
        assert rebuilt["ok_build"] is False, rebuilt
        assert rebuilt["note"].startswith(
            "rebuild of alice failed: [Errno 30] Read-only file system: "
        ), rebuilt
        assert rebuilt["agent"]["state"] == "failed" and rebuilt["agent"]["note"] == rebuilt["note"]
        a.call("send", to="alice", body="still here")
    assert "could not create bob: [Errno 30] Read-only file system" in hive.log()
    _in_ns(hive, f"umount {applied}")
    with hive.admin() as a:
        assert a.call("rebuild", name="alice")["ok_build"] is True
        a.call("destroy", name="bob")  # never built: the operator's way back is a new spawn
        a.call("spawn", name="bob")
        states = {r["name"]: r["state"] for r in a.call("list")["agents"]}
    assert states["alice"] == states["bob"] == "running"
    with hive.agent("alice") as c:
        assert c.call("recv", wait_seconds=0)["message"]["body"] == "still here"


@needs_root
def test_a_read_only_state_dir_at_start_is_one_clear_error(env: dict[str, str]) -> None:
    state = env["HIVE_STATE_DIR"]
    os.makedirs(state, exist_ok=True)
    script = (
        f"mount -t tmpfs -o size=1m,ro tmpfs {state} && "
        f"exec {sys.executable} -m hyperhive.coordinator"
    )
    out = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 1, out.stderr
    assert "Traceback" not in out.stderr
    assert f"cannot take the lock {state}/.lock (Read-only file system)" in out.stderr
    assert "check that the state dir exists and is writable" in out.stderr


def test_a_corrupted_database_stops_the_start_with_one_clear_error(env: dict[str, str]) -> None:
    db = Paths.from_env(env).db
    db.parent.mkdir(parents=True)
    db.write_bytes(b"this is not a database " * 400)
    out = subprocess.run(
        [sys.executable, "-m", "hyperhive.coordinator"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    assert "cannot be opened (file is not a database)" in out.stderr
    assert "restore it from a backup" in out.stderr
    assert db.read_bytes().startswith(b"this is not a database")  # left as it was


def test_a_locked_database_refuses_the_write_then_recovers(
    hive: RunningHive, env: dict[str, str]
) -> None:
    with hive.admin() as a:
        a.call("spawn", name="alice")
    web = RunningWeb(env)
    dashboard = web.client()
    assert dashboard.get("/").status == 200
    holder = sqlite3.connect(hive.paths.db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("INSERT INTO events (kind, payload, created_at) VALUES ('x', '{}', 0)")
    try:
        with hive.admin() as a:  # refused while the lock is still held: the busy timeout
            reply = a.request({"cmd": "send", "to": "alice", "body": "while locked"})
            assert reply == {
                "ok": False,
                "version": 1,
                "error": LOCKED,
                "code": "unavailable",
            }, reply
            assert a.call("whoami")["ok"]
        assert dashboard.get("/").status == 200  # reads go on (WAL)
        got = dashboard.post("/send/alice", {"body": "from the dashboard"})
        assert got.status == 503 and "database is locked" in got.json()["message"], (
            got.text
        )  # unavailable: retry
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        web.stop()
    assert "database error in 'send': database is locked" in hive.log()
    with hive.admin() as a:
        a.call("send", to="alice", body="after")
    with hive.agent("alice") as c:
        assert c.call("recv", wait_seconds=0)["message"]["body"] == "after"
        assert c.call("recv", wait_seconds=0)["message"] is None


def test_deleted_git_repos_are_refused_clearly_and_the_rest_carries_on(
    hive: RunningHive, env: dict[str, str]
) -> None:
    with hive.admin() as a:
        a.call("spawn", name="alice")
        a.call("spawn", name="bob")
    shutil.rmtree(hive.paths.applied_repo("alice"))
    shutil.rmtree(hive.paths.proposed_repo("bob"))
    with hive.admin() as a:
        reply = a.request({"cmd": "restart", "name": "alice"})
        assert reply == {
            "ok": False,
            "version": 1,
            "error": "alice has no applied config yet",
            "code": "conflict",
        }
        a.call("send", to="bob", body="hello")
    with hive.manager() as m:
        reply = m.request({"cmd": "request_apply_commit", "agent": "bob", "commit_ref": "HEAD"})
        assert not reply["ok"]
        assert reply["error"] == "bob has no proposed config repo: call request_init_config first"
    out = hivectl(env, "--json", "rebuild", "alice")
    rebuilt = json.loads(out.stdout)  # the docs: ok_build false, with the note
    assert rebuilt["ok_build"] is False, out
    assert rebuilt["note"] == "rebuild of alice failed: alice has no applied config yet", out
    assert rebuilt["agent"]["state"] == "failed", out
    with hive.agent("bob") as c:
        assert c.call("recv", wait_seconds=0)["message"]["body"] == "hello"
    with hive.admin() as a:  # the operator's way back: destroy and spawn again
        a.call("destroy", name="alice")
        assert a.call("spawn", name="alice")["agent"]["state"] == "running"
