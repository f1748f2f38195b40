"""The harness as a real process against a real coordinator and the fake Messages API:
whole turns with tools, the prompt cache marks, the recv loop and the inbox after a restart.
"""

from __future__ import annotations

import signal

from tests.fakeapi import FakeAnthropic, Reply, Request, Stall, Text, ToolUse, text, tool
from tests.fakeapi.harness import (
    HarnessProcess,
    fake_api,  # noqa: F401 - the pytest fixture `fake`,
    operator_says,
    recv,
    turn_state,
)
from tests.hivetest import RunningHive, spawn


def test_a_whole_turn_with_bash_editor_and_send(hive: RunningHive, fake: FakeAnthropic) -> None:
    spawn(hive, "alice", "bob")
    state_dir = hive.paths.agent_state("alice")
    fake.script(
        Reply(
            [
                Text("I will compute it."),
                ToolUse("bash", {"command": "mkdir -p work && cd work && echo $((6*7)) | tee n"}),
            ]
        ),
        tool("bash", command="pwd; cat n"),
        tool(
            "str_replace_based_edit_tool",
            command="create",
            path=str(state_dir / "answer.md"),
            file_text="the answer is 42\n",
        ),
        tool("send", to="bob", body="the answer is 42"),
        text("Done: I told bob."),
    )
    with HarnessProcess(hive, "alice", config='model = "claude-haiku-4-5"\n') as h:
        operator_says(hive, "alice", "what is six times seven? tell bob")
        got = recv(hive, "bob")
        assert (got["sender"], got["body"]) == ("alice", "the answer is 42")
        h.wait_log("turn ended")
        assert (h.state / "answer.md").read_text() == "the answer is 42\n"
        state = turn_state(hive, "alice")
    requests = fake.wait_requests(5)
    assert fake.unscripted == 0
    first = requests[0]
    assert first.model == "claude-haiku-4-5"
    assert "what is six times seven" in first.text()
    assert "operator" in first.text()
    # the bash tool ran for real, and the session kept its working directory
    results = [r.tool_results()[-1]["content"] for r in requests[1:3]]
    assert results[0].strip() == "42"
    assert results[1].splitlines() == [str(h.state / "work"), "42"]
    assert "created" in requests[3].tool_results()[-1]["content"]
    # the client-side tool types and the hive's own tools (no manager-only ones)
    tools = {t["name"]: t for t in first.body["tools"]}
    assert tools["bash"]["type"] == "bash_20250124"
    assert tools["str_replace_based_edit_tool"]["type"] == "text_editor_20250728"
    assert {"send", "recv", "ask_operator"} <= set(tools)
    assert "request_spawn" not in tools and "kill" not in tools
    # prompt caching: the tools, the system prompt and the conversation so far
    assert first.cache_breakpoints() == ["tools", "system", "messages"]
    assert "you are alice" in first.system_text.lower()
    assert requests[1].body["tools"] == first.body["tools"]
    # the turn state the operator sees: idle again, with the turn's numbers
    assert state["state"] == "idle"
    assert state["input_tokens"] > 0 and state["output_tokens"] > 0
    assert state["cached_tokens"] > 0  # requests 2..5 read the cached tools + system
    assert state["cost_usd"] > 0
    assert state["started_at"] <= state["ended_at"]


def test_the_inbox_filled_while_down_is_read_at_start_one_turn_per_message(
    hive: RunningHive, fake: FakeAnthropic
) -> None:
    spawn(hive, "alice")
    operator_says(hive, "alice", "first: plant the apple tree")
    operator_says(hive, "alice", "second: water it")
    fake.script(text("planted"), text("watered"))
    with HarnessProcess(hive, "alice") as h:
        h.wait_log("turn ended", count=2)
    first, second = fake.wait_requests(2)
    assert "plant the apple tree" in first.text() and "water it" not in first.text()
    last = second.messages[-1]
    assert last["role"] == "user" and "second: water it" in last["content"][0]["text"]
    assert [m["role"] for m in second.messages] == ["user", "assistant", "user"]


def test_a_message_arriving_during_a_turn_starts_the_next_turn(
    hive: RunningHive, fake: FakeAnthropic
) -> None:
    spawn(hive, "alice")

    def meanwhile(req: Request) -> Reply:
        operator_says(hive, "alice", "and one more thing")  # lands while turn 1 runs
        return text("first turn done")

    fake.script(meanwhile, text("second turn done"))
    with HarnessProcess(hive, "alice") as h:
        operator_says(hive, "alice", "start")
        h.wait_log("turn ended", count=2)
    requests = fake.wait_requests(2)
    assert "and one more thing" not in requests[0].text()
    assert "and one more thing" in requests[1].messages[-1]["content"][0]["text"]
    assert fake.unscripted == 0


def test_a_crash_mid_turn_reruns_the_claimed_message_and_the_conversation_survives(
    hive: RunningHive, fake: FakeAnthropic
) -> None:
    spawn(hive, "alice")
    fake.script(Stall())
    h = HarnessProcess(hive, "alice")
    try:
        operator_says(hive, "alice", "the important task")
        fake.wait_requests(1)
        h.stop(signal.SIGKILL)  # dies mid-stream, the message already claimed
        saved = h.conversation()
        assert [m["body"] for m in saved["pending"]] == ["the important task"]
        fake.script(text("finished the important task"), text("yes, the important task"))
        h.start()
        h.wait_log("resuming the open turn")
        h.wait_log("turn ended")
        assert h.conversation()["pending"] == []
        operator_says(hive, "alice", "did you finish?")
        h.wait_log("turn ended", count=2)
    finally:
        h.stop()
    requests = fake.wait_requests(3)
    rerun = requests[1]
    assert rerun.text().count("the important task") == 1  # re-run, not duplicated
    later = requests[2]
    assert [m["role"] for m in later.messages] == ["user", "assistant", "user"]
    assert "finished the important task" in later.text()
    assert turn_state(hive, "alice")["state"] == "idle"
    with hive.admin() as admin:
        assert admin.call("agent_status", name="alice")["agents"][0]["inbox"] == 0


def test_the_conversation_is_compacted_by_a_summary_before_it_outgrows_the_window(
    hive: RunningHive, fake: FakeAnthropic
) -> None:
    spawn(hive, "alice")
    fake.script(
        text("apples noted"),
        text("SUMMARY: the operator likes apples; nothing is open."),
        text("pears noted too"),
    )
    env = {"HIVE_AGENT_COMPACT_TOKENS": "1"}  # every turn after the first compacts
    with HarnessProcess(hive, "alice", env=env) as h:
        operator_says(hive, "alice", "remember: I like apples")
        h.wait_log("turn ended")
        operator_says(hive, "alice", "and pears")
        h.wait_log("turn ended", count=2)
        archive = (h.state / "conversation-archive.jsonl").read_text().splitlines()
        saved = h.conversation()
    first, summary, after = fake.wait_requests(3)
    assert "tool_choice" not in first.body
    assert summary.body["tool_choice"] == {"type": "none"}
    assert "compacted" in summary.messages[-1]["content"][-1]["text"]
    assert "I like apples" in summary.text()
    # the summary replaces the history; the new message is kept word for word
    assert len(after.messages) == 1
    head, kept = after.messages[0]["content"]
    assert "SUMMARY: the operator likes apples" in head["text"]
    assert "and pears" in kept["text"]
    assert "I like apples" not in after.text()
    assert len(archive) == 1 and "I like apples" in archive[0]
    assert saved["compactions"] == 1


def test_the_harness_carries_on_after_the_coordinator_restarts(
    env: dict[str, str], fake: FakeAnthropic
) -> None:
    hive = RunningHive(env)
    try:
        spawn(hive, "alice", "bob")
        fake.script(text("one"), tool("send", to="bob", body="still here"), text("two"))
        with HarnessProcess(hive, "alice") as h:
            operator_says(hive, "alice", "before the restart")
            h.wait_log("turn ended")
            hive.stop()
            hive = RunningHive(env)  # same state and sockets; the harness reconnects
            operator_says(hive, "alice", "after the restart")
            assert recv(hive, "bob")["body"] == "still here"
            h.wait_log("turn ended", count=2)
    finally:
        hive.stop()
    assert "after the restart" in fake.wait_requests(2)[1].text()
