"""The operator cancels a turn (admin `cancel_turn`): the harness stops a stream, kills a
running tool or ends a `recv` then and there, says so in its conversation, and takes the
next message. What is cancelled would not end by itself for minutes, so the cancel's report
arriving at all shows the cancel ended it; how fast is for a benchmark, not asserted here.
"""

from __future__ import annotations

import os

from tests.fakeapi import FakeAnthropic, Stall, text, tool
from tests.fakeapi.harness import (
    HarnessProcess,
    admin,
    exits_within,
    fake_api,  # noqa: F401 - the pytest fixture `fake`,
    operator_says,
    turn_state,
)
from tests.hivetest import RunningHive, spawn

NOTE = "The operator cancelled this turn"


def cancel(hive: RunningHive, h: HarnessProcess) -> None:
    """Cancel alice's turn and wait until the harness reports it cancelled."""
    admin(hive, "cancel_turn", name="alice")
    h.wait_log("turn cancelled by the operator", timeout=60)


def test_cancel_during_a_stream(hive: RunningHive, fake: FakeAnthropic) -> None:
    spawn(hive, "alice")
    fake.script(Stall("I am thinking very slowly"), text("fresh start"))
    with HarnessProcess(hive, "alice") as h:
        operator_says(hive, "alice", "think forever")
        fake.wait_requests(1)  # the stream has started and hangs until the server closes
        cancel(hive, h)
        state = turn_state(hive, "alice")
        saved = h.conversation()
        operator_says(hive, "alice", "next thing")
        h.wait_log("turn ended")
    assert state["state"] == "idle" and state["detail"] == "cancelled by the operator"
    assert saved["pending"] == []
    last = saved["messages"][-1]
    assert last["role"] == "assistant" and NOTE in last["content"][-1]["text"]
    after = fake.wait_requests(2)[1]
    assert NOTE in after.text() and "next thing" in after.text()


def test_cancel_during_a_tool_kills_it(hive: RunningHive, fake: FakeAnthropic) -> None:
    spawn(hive, "alice")
    fake.script(
        tool("bash", command="echo $$ > ready; sleep 3600"),
        text("after the cancel"),
    )
    ready = hive.paths.agent_state("alice") / "ready"
    ready.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(ready)  # the tool writes its pid here once it runs; reading waits for that
    with HarnessProcess(hive, "alice", env={"HIVE_AGENT_BASH_TIMEOUT": "900"}) as h:
        operator_says(hive, "alice", "run the long job")
        pid = int(ready.read_text())
        assert not exits_within(pid, 0)  # still running (its own timeout is 15 minutes away)
        cancel(hive, h)
        saved = h.conversation()
        operator_says(hive, "alice", "what happened?")
        h.wait_log("turn ended")
    assert exits_within(pid, 30)
    results = [
        b
        for m in saved["messages"]
        if m["role"] == "user"
        for b in m["content"]
        if b["type"] == "tool_result"
    ]
    assert results[-1]["is_error"] is True and "cancelled" in results[-1]["content"]
    assert NOTE in saved["messages"][-1]["content"][-1]["text"]
    after = fake.wait_requests(2)[1]  # valid history: the tool_use has its result
    assert "what happened?" in after.text()


def test_cancel_while_the_model_waits_in_recv(hive: RunningHive, fake: FakeAnthropic) -> None:
    spawn(hive, "alice")
    fake.script(tool("recv", wait_seconds=180), text("ok"))  # the longest wait the tool allows
    with HarnessProcess(hive, "alice") as h:
        operator_says(hive, "alice", "wait for bob")
        h.wait_log("tool recv")
        waiting = turn_state(hive, "alice")
        cancel(hive, h)
        operator_says(hive, "alice", "never mind")
        h.wait_log("turn ended")
    assert waiting["state"] == "waiting" and waiting["tool"] == "recv"
    assert "never mind" in fake.wait_requests(2)[1].text()  # not swallowed by the dead recv
