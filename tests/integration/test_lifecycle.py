"""Lifecycle verbs through the admin and manager sockets, crashes, destroy and purge, bootstrap."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from services.hive.client import Refused
from tests.hivetest import RunningHive, hivectl, running_hive
from tests.integration.flowtools import harness_pid, manager_events, pid_alive, wait_for_event


def test_manager_is_bootstrapped_with_its_repos(hive: RunningHive) -> None:
    state = Path(hive.env["HIVE_STATE_DIR"])
    assert (state / "agents/hm1nd/config/.git").is_dir()
    assert (state / "applied/hm1nd/agent.toml").is_file()
    assert (state / "applied/.hm1nd.hyperhive-rev").is_file()
    pid = harness_pid(hive, "hm1nd")
    env = Path(f"/proc/{pid}/environ").read_bytes()
    assert b"HIVE_AGENT=hm1nd" in env and b"HIVE_AGENT_KIND=manager" in env
    assert f"HIVE_AGENTS_DIR={state / 'agents'}".encode() in env
    assert f"HIVE_SOCKET={hive.paths.manager_socket}".encode() in env
    with hive.admin() as a:
        row = a.call("agent_status", name="hm1nd")["agents"][0]
    assert row["state"] == "running" and row["kind"] == "manager" and row["needs_update"] is False
    assert manager_events(hive) == [
        {"event": "spawned", "agent": "hm1nd", "ok": True, "note": None}
    ]


def test_manager_bootstrap_happens_once(env: dict[str, str]) -> None:
    with running_hive(env) as hive:
        manager_events(hive)
    with running_hive(env) as hive:
        assert manager_events(hive) == []  # restarted, not created again
        assert pid_alive(harness_pid(hive, "hm1nd"))


def test_stop_start_restart_kill(hive: RunningHive) -> None:
    with hive.admin() as a:
        a.call("spawn", name="alice")
    manager_events(hive)
    pid = harness_pid(hive, "alice")
    assert hivectl(hive.env, "stop", "alice").returncode == 0
    assert not pid_alive(pid)
    with hive.admin() as a:
        assert a.call("agent_status", name="alice")["agents"][0]["state"] == "stopped"
        a.call("start", name="alice")
        pid2 = harness_pid(hive, "alice")
        assert pid_alive(pid2)
        a.call("restart", name="alice")
        pid3 = harness_pid(hive, "alice")
        assert pid3 != pid2 and pid_alive(pid3) and not pid_alive(pid2)
        a.call("kill", name="alice")
        assert not pid_alive(pid3)
        row = a.call("agent_status", name="alice")["agents"][0]
        assert row["state"] == "stopped" and row["transient"] is None
    # an operator stop / restart is not a crash; a kill is reported as a kill
    assert manager_events(hive) == [{"event": "killed", "agent": "alice"}]


def test_manager_may_start_restart_kill_sub_agents_only(hive: RunningHive) -> None:
    with hive.admin() as a:
        a.call("spawn", name="alice")
    with hive.manager() as m:
        m.call("kill", agent="alice")
        m.call("start", agent="alice")
        m.call("restart", agent="alice")
        with pytest.raises(Refused, match="cannot do this to itself"):
            m.call("kill", agent="hm1nd")
        with pytest.raises(Refused, match="only available on the admin socket"):
            m.call("destroy", agent="alice")
    with hive.admin() as a:
        a.call("spawn", name="bob")
    with hive.agent("bob") as b, pytest.raises(Refused, match="only available"):
        b.call("kill", agent="alice")


def test_a_crash_is_reported_once_with_its_exit_status(hive: RunningHive) -> None:
    with hive.admin() as a:
        a.call("spawn", name="alice")
    manager_events(hive)
    os.kill(harness_pid(hive, "alice"), signal.SIGKILL)
    crash = wait_for_event(hive, "container_crash")
    assert crash["agent"] == "alice" and "killed by signal 9" in crash["note"]
    with hive.admin() as a:
        row = a.call("agent_status", name="alice")["agents"][0]
    assert row["state"] == "failed" and "killed by signal 9" in row["note"]
    assert manager_events(hive) == []
    with hive.admin() as a:  # the operator can bring it back
        a.call("start", name="alice")
        assert a.call("agent_status", name="alice")["agents"][0]["state"] == "running"


def test_a_crash_of_the_manager_is_recorded(hive: RunningHive) -> None:
    manager_events(hive)
    os.kill(harness_pid(hive, "hm1nd"), signal.SIGKILL)
    crash = wait_for_event(hive, "container_crash")
    assert crash["agent"] == "hm1nd"
    with hive.admin() as a:
        assert a.call("agent_status", name="hm1nd")["agents"][0]["state"] == "failed"


def test_destroy_keeps_proposed_and_state_unless_purged(hive: RunningHive) -> None:
    state = Path(hive.env["HIVE_STATE_DIR"])
    with hive.admin() as a:
        a.call("spawn", name="alice")
        a.call("spawn", name="bob")
    (hive.paths.agent_state("alice") / "notes.txt").write_text("remember me")
    pid = harness_pid(hive, "alice")
    manager_events(hive)
    assert hivectl(hive.env, "destroy", "alice").returncode == 0
    assert not pid_alive(pid)
    assert not (state / "applied/alice").exists()
    assert not (state / "applied/.alice.hyperhive-rev").exists()
    assert (state / "agents/alice/config/.git").is_dir()
    assert (hive.paths.agent_state("alice") / "notes.txt").read_text() == "remember me"
    assert not hive.paths.agent_socket("alice").exists()
    with hive.admin() as a:
        assert "alice" not in [r["name"] for r in a.call("list")["agents"]]
        a.call("destroy", name="bob", purge=True)
        with pytest.raises(Refused, match="is invalid"):
            a.call("destroy", name="../agents", purge=True)
        with pytest.raises(Refused, match="required infrastructure"):
            a.call("destroy", name="hm1nd")
    assert not (state / "agents/bob").exists()
    assert not hive.paths.agent_state("bob").exists()
    assert (hive.paths.agent_state("alice") / "notes.txt").exists()  # the bad purge touched nothing
    assert [e["event"] for e in manager_events(hive)] == ["destroyed", "destroyed"]
    with hive.admin() as a:  # destroyed alice can come back from her kept repo
        assert a.call("spawn", name="alice")["agent"]["state"] == "running"


def test_rebuild(hive: RunningHive) -> None:
    with hive.admin() as a:
        a.call("spawn", name="alice")
        pid = harness_pid(hive, "alice")
        manager_events(hive)
        out = a.call("rebuild", name="alice")
        assert out["ok_build"] is True and out["agent"]["state"] == "running"
    assert harness_pid(hive, "alice") != pid
    assert manager_events(hive) == [
        {"event": "rebuilt", "agent": "alice", "ok": True, "note": None}
    ]


def test_a_payload_that_cannot_start_fails_the_spawn_clearly(env: dict[str, str]) -> None:
    env["HIVE_AGENT_COMMAND"] = "/nonexistent/harness"
    with running_hive(env) as hive, hive.admin() as a:
        row = a.call("spawn", name="alice")["agent"]
        assert row["state"] == "failed" and "could not start alice's harness" in row["note"]
        assert wait_for_event(hive, "spawned")["agent"] == "hm1nd"


def test_spawn_without_waiting_shows_spawning(hive: RunningHive) -> None:
    manager_events(hive)
    with hive.admin() as a:
        row = a.call("spawn", name="alice", wait=False)["agent"]
    assert row["state"] == "spawning"
    assert wait_for_event(hive, "spawned") == {
        "event": "spawned",
        "agent": "alice",
        "ok": True,
        "note": None,
    }
    with hive.admin() as a:
        assert a.call("agent_status", name="alice")["agents"][0]["state"] == "running"


def test_watch_wakes_on_every_kind_of_change(hive: RunningHive) -> None:
    with hive.admin() as a:
        first = a.call("watch", after=-1)
        assert set(first["kinds"]) >= {"agents", "approvals", "questions", "messages"}
        version = first["changes"]
        assert a.call("watch", after=version, wait_seconds=0.1)["kinds"] == []
        seen: dict[str, object] = {}

        def watch() -> None:
            with hive.admin() as w:
                seen["reply"] = w.call("watch", after=version, wait_seconds=60)

        import threading

        t = threading.Thread(target=watch)
        t.start()
        with hive.manager() as m:
            m.call("ask_operator", question="watching?")
        t.join(30)
        reply = seen["reply"]
        assert isinstance(reply, dict) and "questions" in reply["kinds"]
        assert reply["changes"] > version


def test_a_crash_recorded_while_the_coordinator_was_down_is_not_hidden(env: dict[str, str]) -> None:
    from services.hive.db import open_db
    from services.hive.events import ContainerCrash
    from services.hive.inbox import notify_manager

    with running_hive(env) as hive, hive.admin() as a:
        a.call("spawn", name="alice")
    open_db(Path(env["HIVE_STATE_DIR"]) / "hive.db")
    notify_manager(ContainerCrash(agent="alice", note="exit status 3 (seen by the watcher)"))
    with running_hive(env) as hive, hive.admin() as a:
        row = a.call("agent_status", name="alice")["agents"][0]
        assert row["state"] == "failed" and "exit status 3" in row["note"]
        assert not (hive.paths.runtime_dir / "process" / "alice.pid").exists()
        bob = a.call("spawn", name="bob")["agent"]  # the others carry on
        assert bob["state"] == "running"


def test_a_restarted_agent_is_kicked_to_read_its_inbox(hive: RunningHive) -> None:
    import threading

    with hive.admin() as a:
        a.call("spawn", name="alice")
    got: dict[str, object] = {}

    def harness_waiting() -> None:  # a harness already blocked in recv, as after a reconnect
        with hive.agent("alice") as c:
            got.update(c.call("recv", wait_seconds=120, ack=True))

    t = threading.Thread(target=harness_waiting)
    t.start()
    with hive.admin() as a:
        deadline = time.monotonic() + 30
        while a.call("agent_status", name="alice")["agents"][0]["listening"] == 0:
            assert time.monotonic() < deadline, "the receiver never waited"
            time.sleep(0.02)
        a.call("restart", name="alice")
    t.join(30)
    assert not t.is_alive() and got.get("kicked") is True and got.get("message") is None
