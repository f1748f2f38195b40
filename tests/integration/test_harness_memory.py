"""The harness's memory while it waits: the SDK is loaded only by a turn, and a harness that
has waited long enough after a turn starts again in place (same process) without it,
keeping its bash session and answering the next message as before."""

from __future__ import annotations

from pathlib import Path

from tests.fakeapi import FakeAnthropic, tool
from tests.fakeapi.harness import (
    HarnessProcess,
    fake_api,  # noqa: F401 - the pytest fixture `fake`
    operator_says,
    turn_state,
)
from tests.hivetest import RunningHive, spawn

SDK_LIBRARY = "pydantic_core"
"""A shared library the anthropic SDK maps (through pydantic) and waiting never needs."""


def maps(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text()


def test_waiting_needs_no_sdk_and_a_turn_s_memory_is_released(
    hive: RunningHive, fake: FakeAnthropic
) -> None:
    spawn(hive, "alice")
    env = {"HIVE_AGENT_SHED_AFTER": "0.5"}
    with HarnessProcess(hive, "alice", env=env) as h:
        assert h.proc is not None
        pid = h.proc.pid
        h.wait_log("harness started")
        assert SDK_LIBRARY not in maps(pid)  # waiting since its start: never loaded
        fake.script(tool("bash", command="mkdir -p work && cd work && export MARK=kept"))
        operator_says(hive, "alice", "make a dir and go there")
        h.wait_log("turn ended")
        h.wait_log("harness started again in place")
        assert h.alive and h.proc.pid == pid  # the same process, the same container
        assert SDK_LIBRARY not in maps(pid)
        assert turn_state(hive, "alice")["state"] == "idle"  # as the last turn left it
        # the next message is answered as before, and the bash session carried on
        fake.script(tool("bash", command="pwd; echo $MARK"))
        operator_says(hive, "alice", "where are you?")
        h.wait_log("turn ended", count=2)
        h.wait_log("harness started again in place", count=2)
    requests = fake.wait_requests(4)
    result = requests[3].tool_results()[-1]["content"]
    assert result.splitlines() == [str(h.state / "work"), "kept"]
