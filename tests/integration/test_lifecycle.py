"""Lifecycle verbs as the operator and the manager, crashes, destroy and purge, bootstrap (in
process); what a restart of the coordinator process keeps, through its sockets."""

from __future__ import annotations

import os
import signal
import time

import pytest
from hyperhive.hive.client import Refused
from hyperhive.hive.paths import Paths

from tests.hivetest import running_hive, spawn
from tests.inproc import InProcessHive
from tests.integration.flowtools import (
    environ_of,
    harness_pid,
    manager_events,
    pid_alive,
    wait_for_event,
)


def test_manager_is_bootstrapped_with_its_repos(inproc: InProcessHive) -> None:
    assert (inproc.paths.proposed_repo("hm1nd") / ".git").is_dir()
    assert (inproc.paths.applied_repo("hm1nd") / "agent.toml").is_file()
    assert inproc.paths.rev_marker("hm1nd").is_file()
    env = environ_of(harness_pid(inproc, "hm1nd"))
    assert env["HIVE_AGENT"] == "hm1nd" and env["HIVE_AGENT_KIND"] == "manager"
    assert env["HIVE_AGENTS_DIR"] == str(inproc.paths.agents_dir)
    assert env["HIVE_SOCKET"] == str(inproc.paths.manager_socket)
    with inproc.admin() as a:
        row = a.call("agent_status", name="hm1nd")["agents"][0]
    assert row["state"] == "running" and row["kind"] == "manager" and row["needs_update"] is False
    assert manager_events(inproc) == [
        {"event": "spawned", "agent": "hm1nd", "ok": True, "note": None}
    ]


def test_manager_bootstrap_happens_once(env: dict[str, str]) -> None:
    with running_hive(env) as hive:
        manager_events(hive)
    with running_hive(env) as hive:
        assert manager_events(hive) == []  # restarted, not created again
        assert pid_alive(harness_pid(hive, "hm1nd"))


def test_stop_start_restart_kill(inproc: InProcessHive) -> None:
    spawn(inproc, "alice")
    manager_events(inproc)
    pid = harness_pid(inproc, "alice")
    assert inproc.admin("stop", name="alice")["agent"]["state"] == "stopped"
    assert not pid_alive(pid)
    with inproc.admin() as a:
        assert a.call("agent_status", name="alice")["agents"][0]["state"] == "stopped"
        a.call("start", name="alice")
        pid2 = harness_pid(inproc, "alice")
        assert pid_alive(pid2)
        a.call("restart", name="alice")
        pid3 = harness_pid(inproc, "alice")
        assert pid3 != pid2 and pid_alive(pid3) and not pid_alive(pid2)
        a.call("kill", name="alice")
        assert not pid_alive(pid3)
        row = a.call("agent_status", name="alice")["agents"][0]
        assert row["state"] == "stopped" and row["transient"] is None
    # an operator stop / restart is not a crash; a kill is reported as a kill
    assert manager_events(inproc) == [{"event": "killed", "agent": "alice"}]


def test_manager_may_start_restart_kill_sub_agents_only(inproc: InProcessHive) -> None:
    spawn(inproc, "alice")
    with inproc.manager() as m:
        m.call("kill", agent="alice")
        m.call("start", agent="alice")
        m.call("restart", agent="alice")
        with pytest.raises(Refused, match="cannot do this to itself"):
            m.call("kill", agent="hm1nd")
        with pytest.raises(Refused, match="only available on the admin socket"):
            m.call("destroy", agent="alice")
    spawn(inproc, "bob")
    with inproc.agent("bob") as b, pytest.raises(Refused, match="only available"):
        b.call("kill", agent="alice")


def test_a_crash_is_reported_once_with_its_exit_status(inproc: InProcessHive) -> None:
    spawn(inproc, "alice")
    manager_events(inproc)
    os.kill(harness_pid(inproc, "alice"), signal.SIGKILL)
    crash = wait_for_event(inproc, "container_crash")
    assert crash["agent"] == "alice" and "killed by signal 9" in crash["note"]
    with inproc.admin() as a:
        row = a.call("agent_status", name="alice")["agents"][0]
    assert row["state"] == "failed" and "killed by signal 9" in row["note"]
    assert manager_events(inproc) == []
    with inproc.admin() as a:  # the operator can bring it back
        a.call("start", name="alice")
        assert a.call("agent_status", name="alice")["agents"][0]["state"] == "running"


def test_a_crash_of_the_manager_is_recorded(inproc: InProcessHive) -> None:
    manager_events(inproc)
    os.kill(harness_pid(inproc, "hm1nd"), signal.SIGKILL)
    crash = wait_for_event(inproc, "container_crash")
    assert crash["agent"] == "hm1nd"
    with inproc.admin() as a:
        assert a.call("agent_status", name="hm1nd")["agents"][0]["state"] == "failed"


def test_destroy_keeps_proposed_and_state_unless_purged(inproc: InProcessHive) -> None:
    spawn(inproc, "alice", "bob")
    (inproc.paths.agent_state("alice") / "notes.txt").write_text("remember me")
    pid = harness_pid(inproc, "alice")
    manager_events(inproc)
    inproc.admin("destroy", name="alice")
    assert not pid_alive(pid)
    assert not inproc.paths.applied_repo("alice").exists()
    assert not inproc.paths.rev_marker("alice").exists()
    assert (inproc.paths.proposed_repo("alice") / ".git").is_dir()
    assert (inproc.paths.agent_state("alice") / "notes.txt").read_text() == "remember me"
    assert not inproc.paths.agent_socket("alice").exists()
    with inproc.admin() as a:
        assert "alice" not in [r["name"] for r in a.call("list")["agents"]]
        a.call("destroy", name="bob", purge=True)
        with pytest.raises(Refused, match="is invalid"):
            a.call("destroy", name="../agents", purge=True)
        with pytest.raises(Refused, match="required infrastructure"):
            a.call("destroy", name="hm1nd")
    assert not inproc.paths.agent_dir("bob").exists()
    assert not inproc.paths.agent_state("bob").exists()
    assert (inproc.paths.agent_state("alice") / "notes.txt").exists()  # the bad purge: nothing
    assert [e["event"] for e in manager_events(inproc)] == ["destroyed", "destroyed"]
    with inproc.admin() as a:  # destroyed alice can come back from her kept repo
        assert a.call("spawn", name="alice")["agent"]["state"] == "running"


def test_rebuild(inproc: InProcessHive) -> None:
    spawn(inproc, "alice")
    with inproc.admin() as a:
        pid = harness_pid(inproc, "alice")
        manager_events(inproc)
        out = a.call("rebuild", name="alice")
        assert out["ok_build"] is True and out["agent"]["state"] == "running"
    assert harness_pid(inproc, "alice") != pid
    assert manager_events(inproc) == [
        {"event": "rebuilt", "agent": "alice", "ok": True, "note": None}
    ]


def test_a_payload_that_cannot_start_fails_the_spawn_clearly(env: dict[str, str]) -> None:
    env["HIVE_AGENT_COMMAND"] = "/nonexistent/harness"
    with InProcessHive(env) as hive:
        row = hive.admin("spawn", name="alice")["agent"]
        assert row["state"] == "failed" and "could not start alice's harness" in row["note"]
        assert wait_for_event(hive, "spawned")["agent"] == "hm1nd"


def test_spawn_without_waiting_shows_spawning(inproc: InProcessHive) -> None:
    manager_events(inproc)
    row = inproc.admin("spawn", name="alice", wait=False)["agent"]
    assert row["state"] == "spawning"
    assert wait_for_event(inproc, "spawned") == {
        "event": "spawned",
        "agent": "alice",
        "ok": True,
        "note": None,
    }
    with inproc.admin() as a:
        assert a.call("agent_status", name="alice")["agents"][0]["state"] == "running"


def test_watch_wakes_on_every_kind_of_change(inproc: InProcessHive) -> None:
    with inproc.admin() as a:
        first = a.call("watch", after=-1)
        assert set(first["kinds"]) >= {"agents", "approvals", "questions", "messages"}
        version = first["changes"]
        assert a.call("watch", after=version, wait_seconds=0.1)["kinds"] == []
        watching = a.submit("watch", after=version, wait_seconds=60)
        inproc.manager("ask_operator", question="watching?")
        reply = watching.result(30)
        assert "questions" in reply["kinds"] and reply["changes"] > version


def test_a_crash_recorded_while_the_coordinator_was_down_is_not_hidden(env: dict[str, str]) -> None:
    from hyperhive.hive.db import open_db
    from hyperhive.hive.events import ContainerCrash
    from hyperhive.hive.inbox import notify_manager

    with running_hive(env) as hive, hive.admin() as a:
        a.call("spawn", name="alice")
    open_db(Paths.from_env(env).db)
    notify_manager(ContainerCrash(agent="alice", note="exit status 3 (seen by the watcher)"))
    with running_hive(env) as hive, hive.admin() as a:
        row = a.call("agent_status", name="alice")["agents"][0]
        assert row["state"] == "failed" and "exit status 3" in row["note"]
        assert not (hive.paths.runtime_dir / "process" / "alice.pid").exists()
        bob = a.call("spawn", name="bob")["agent"]  # the others carry on
        assert bob["state"] == "running"


def test_a_restarted_agent_is_kicked_to_read_its_inbox(inproc: InProcessHive) -> None:
    spawn(inproc, "alice")
    with inproc.agent("alice") as harness:  # already blocked in recv, as after a reconnect
        waiting = harness.submit("recv", wait_seconds=120, ack=True)
        with inproc.admin() as a:
            deadline = time.monotonic() + 30
            while a.call("agent_status", name="alice")["agents"][0]["listening"] == 0:
                assert time.monotonic() < deadline, "the receiver never waited"
                time.sleep(0.02)
            a.call("restart", name="alice")
        got = waiting.result(30)
    assert got["kicked"] is True and got["message"] is None
