"""The in-process harness itself: it runs the real coordinator's commands as the caller the
socket would name, waits and hangs up as a connection does, and leaves no process behind."""

from __future__ import annotations

import time
from typing import Any

import pytest
from hyperhive.coordinator import registry
from hyperhive.hive.client import Refused, Unreachable
from hyperhive.hive.vocab import Code

from tests.hivetest import spawn
from tests.inproc import InProcessHive
from tests.integration.flowtools import harness_pid, pid_alive


def listening(hive: InProcessHive, name: str) -> int:
    return int(hive.admin("agent_status", name=name)["agents"][0]["listening"])


def wait_listening(hive: InProcessHive, name: str) -> None:
    deadline = time.monotonic() + 10
    while listening(hive, name) == 0:
        assert time.monotonic() < deadline, f"{name}'s receiver never waited"
        time.sleep(0.01)


def test_stop_ends_the_coordinator_and_every_agent_process(env: dict[str, str]) -> None:
    hive = InProcessHive(env)
    hive.start()
    try:
        spawn(hive, "alice", "bob")
        pids = [harness_pid(hive, name) for name in ("hm1nd", "alice", "bob")]
        assert all(pid_alive(pid) for pid in pids)
    finally:
        hive.stop()
    assert not any(pid_alive(pid) for pid in pids)
    with pytest.raises(Unreachable):
        hive.admin("list")


def test_each_peer_is_the_caller_its_socket_would_name(inproc: InProcessHive) -> None:
    spawn(inproc, "alice")
    assert inproc.admin("whoami")["role"] == "admin"
    assert inproc.manager("whoami")["role"] == inproc.agent("hm1nd", "whoami")["role"] == "manager"
    assert inproc.agent("alice", "whoami")["name"] == "alice"
    with pytest.raises(Refused, match="only available on the admin socket") as refused:
        inproc.agent("alice", "spawn", name="bob")
    assert refused.value.code == Code.FORBIDDEN
    with pytest.raises(Unreachable):  # no socket, no connection
        inproc.agent("ghost")


def test_refusals_raise_from_call_and_come_back_from_request(inproc: InProcessHive) -> None:
    with pytest.raises(Refused, match="no agent named 'ghost'") as refused:
        inproc.admin("start", name="ghost")
    assert refused.value.code == Code.NOT_FOUND
    with inproc.admin() as a:
        reply = a.request({"cmd": "start", "name": "ghost"})
        assert reply["ok"] is False and reply["code"] == "not_found"
        assert "no agent named 'ghost'" in reply["error"]
        bad = a.request({"cmd": "spawn", "name": 3})  # decoded and checked as on the wire
        assert bad["ok"] is False and bad["code"] == "invalid"


def test_an_exception_in_a_handler_reaches_the_test(
    inproc: InProcessHive, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: Any) -> dict[str, Any]:
        raise ZeroDivisionError("a bug")

    whoami = registry.COMMANDS["whoami"]
    monkeypatch.setitem(
        registry.COMMANDS, "whoami", registry.Command("whoami", whoami.roles, "", broken)
    )
    with pytest.raises(ZeroDivisionError, match="a bug"):
        inproc.admin("whoami")


def test_a_waiting_recv_is_woken_and_a_hang_up_gives_back_its_lease(
    inproc: InProcessHive,
) -> None:
    spawn(inproc, "alice")
    with inproc.agent("alice") as harness:
        waiting = harness.submit("recv", wait_seconds=30, ack=True)
        wait_listening(inproc, "alice")
        inproc.admin("send", to="alice", body="hello")
        leased = waiting.result(10)["message"]
        assert leased["body"] == "hello"
    # hung up without an ack: the message is back in the inbox
    again = inproc.agent("alice", "recv", wait_seconds=0)["message"]
    assert again is not None and again["id"] == leased["id"]


def test_a_hang_up_ends_a_waiting_recv(inproc: InProcessHive) -> None:
    spawn(inproc, "alice")
    harness = inproc.agent("alice")
    waiting = harness.submit("recv", wait_seconds=60)
    wait_listening(inproc, "alice")
    harness.close()
    assert waiting.result(10)["message"] is None
    assert listening(inproc, "alice") == 0
    with pytest.raises(Unreachable):
        harness.call("whoami")


def test_another_hive_on_the_same_state_takes_up_where_the_first_stopped(
    env: dict[str, str],
) -> None:
    with InProcessHive(env) as first:
        spawn(first, "alice")
        qid = first.manager("ask_operator", question="still there?")["id"]
    with InProcessHive(env) as second:
        rows = {r["name"]: r["state"] for r in second.admin("list")["agents"]}
        assert rows == {"hm1nd": "running", "alice": "running"}
        assert [q["id"] for q in second.admin("questions")["questions"]] == [qid]
