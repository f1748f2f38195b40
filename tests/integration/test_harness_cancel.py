"""The operator cancels a turn (admin `cancel_turn`): the harness stops a stream or kills a
running tool within a second, says so in its conversation, and takes the next message.
"""

from __future__ import annotations

import os
import time

from tests.fakeapi import FakeAnthropic, Stall, text, tool
from tests.fakeapi.harness import (
    HarnessProcess,
    admin,
    exits_within,
    fake_api,  # noqa: F401 - the pytest fixture `fake`
    operator_says,
    spawn,
    turn_state,
)
from tests.hivetest import RunningHive

NOTE = "The operator cancelled this turn"


def cancel_and_time(hive: RunningHive, h: HarnessProcess) -> float:
    """Cancel alice's turn; seconds until the harness reports it cancelled."""
    t0 = time.monotonic()
    admin(hive, "cancel_turn", name="alice")
    h.wait_log("turn cancelled by the operator", timeout=10)
    return time.monotonic() - t0


def test_cancel_during_a_stream(hive: RunningHive, fake: FakeAnthropic) -> None:
    spawn(hive, "alice")
    fake.script(Stall("I am thinking very slowly"), text("fresh start"))
    with HarnessProcess(hive, "alice", fake) as h:
        operator_says(hive, "alice", "think forever")
        fake.wait_requests(1)  # the stream has started and hangs
        took = cancel_and_time(hive, h)
        state = turn_state(hive, "alice")
        saved = h.conversation()
        operator_says(hive, "alice", "next thing")
        h.wait_log("turn ended")
    assert took < 1.0
    assert state["state"] == "idle" and state["detail"] == "cancelled by the operator"
    assert saved["pending"] == []
    last = saved["messages"][-1]
    assert last["role"] == "assistant" and NOTE in last["content"][-1]["text"]
    after = fake.wait_requests(2)[1]
    assert NOTE in after.text() and "next thing" in after.text()


def test_cancel_during_a_tool_kills_it(hive: RunningHive, fake: FakeAnthropic) -> None:
    spawn(hive, "alice")
    fake.script(
        tool("bash", command="echo $$ > ready; sleep 300"),
        text("after the cancel"),
    )
    ready = hive.paths.agent_state("alice") / "ready"
    ready.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(ready)  # the tool writes its pid here once it runs; reading waits for that
    with HarnessProcess(hive, "alice", fake, env={"HIVE_AGENT_BASH_TIMEOUT": "120"}) as h:
        operator_says(hive, "alice", "run the long job")
        pid = int(ready.read_text())
        took = cancel_and_time(hive, h)
        saved = h.conversation()
        operator_says(hive, "alice", "what happened?")
        h.wait_log("turn ended")
    assert took < 1.0
    assert exits_within(pid, 5)
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
    fake.script(tool("recv", wait_seconds=120), text("ok"))
    with HarnessProcess(hive, "alice", fake) as h:
        operator_says(hive, "alice", "wait for bob")
        h.wait_log("tool recv")
        waiting = turn_state(hive, "alice")
        took = cancel_and_time(hive, h)
        operator_says(hive, "alice", "never mind")
        h.wait_log("turn ended")
    assert waiting["state"] == "waiting" and waiting["tool"] == "recv"
    assert took < 1.0
    assert "never mind" in fake.wait_requests(2)[1].text()  # not swallowed by the dead recv
