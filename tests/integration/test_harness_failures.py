"""The harness when things go wrong: an overloaded or failing API, no key or a refused
key, a tool that hangs. Real harness process, real coordinator, the fake Messages API.
"""

from __future__ import annotations

from tests.fakeapi import API_KEY, ApiError, FakeAnthropic, StreamError, text, tool
from tests.fakeapi.harness import (
    HarnessProcess,
    admin,
    exits_within,
    fake_api,  # noqa: F401 - the pytest fixture `fake`,
    operator_says,
    turn_state,
)
from tests.hivetest import RunningHive, running_hive, spawn


def inbox(hive: RunningHive, name: str) -> int:
    count: int = admin(hive, "agent_status", name=name)["agents"][0]["inbox"]
    return count


def test_overloaded_rate_limited_and_5xx_are_retried_and_the_message_kept(
    hive: RunningHive, fake: FakeAnthropic
) -> None:
    spawn(hive, "alice")
    fake.script(
        ApiError(529),
        ApiError(429, retry_after=2),  # the harness honours retry-after (capped below)
        ApiError(500),
        StreamError("overloaded_error"),  # the API can also fail mid-stream
        text("got through"),
    )
    env = {"HIVE_AGENT_RETRY_CAP": "2"}
    with HarnessProcess(hive, "alice", env=env) as h:
        operator_says(hive, "alice", "please answer despite the outage")
        line = h.wait_log("retrying: rate_limit_error (429)")
        during = turn_state(hive, "alice")  # the harness is in its 2 s backoff now
        h.wait_log("turn ended")
        after = turn_state(hive, "alice")
    assert "attempt 3 in 2.0 s" in line
    assert during["state"] == "error"
    assert during["detail"].startswith("retrying: rate_limit_error (429)")
    assert len(h.lines("retrying:")) == 4
    requests = fake.wait_requests(5)
    for req in requests:  # every attempt carries the message: nothing was lost
        assert "please answer despite the outage" in req.text()
    assert after["state"] == "idle" and after["detail"] == "turn ended"
    assert fake.unscripted == 0


def test_a_fatal_api_error_ends_the_turn_in_error_and_the_conversation_says_so(
    hive: RunningHive, fake: FakeAnthropic
) -> None:
    spawn(hive, "alice")
    fake.script(ApiError(400, message="messages: something the API refuses"), text("fine now"))
    with HarnessProcess(hive, "alice") as h:
        operator_says(hive, "alice", "do it")
        h.wait_log("turn failed")
        failed = turn_state(hive, "alice")
        operator_says(hive, "alice", "try again")
        h.wait_log("turn ended")
    assert failed["state"] == "error"
    assert "something the API refuses" in failed["detail"]
    second = fake.wait_requests(2)[1]
    assert "This turn failed" in second.text()  # the model reads what happened
    assert "do it" in second.text() and "try again" in second.text()


def test_needs_login_leaves_the_inbox_alone_until_the_gateway_has_a_key(
    env: dict[str, str], fake: FakeAnthropic
) -> None:
    """The gateway (run by the coordinator) has no key: the harness says needs_login with
    the gateway's sentence and leaves its inbox alone; once a gateway with a key answers
    (the coordinator started again with one), it is woken and takes the message."""
    with running_hive({**env, "ANTHROPIC_API_KEY": ""}) as hive:
        spawn(hive, "alice")
        h = HarnessProcess(hive, "alice")
        try:
            h.wait_log("needs login")
            operator_says(hive, "alice", "are you there?")
            state = turn_state(hive, "alice")
            assert state["state"] == "needs_login"
            assert state["detail"].startswith("the model gateway has no Anthropic API key: ")
            assert "ANTHROPIC_API_KEY" in state["detail"]
            assert inbox(hive, "alice") == 1  # not consumed
        except BaseException:
            h.stop()
            raise
    fake.script(text("I am here"))
    with running_hive(env) as hive, h:  # the same hive, its gateway holding the key now
        h.wait_log("turn ended")  # woken by the new socket, long before the 60 s safety net
        assert inbox(hive, "alice") == 0
    (req,) = fake.wait_requests(1)
    assert req.headers.get("x-api-key") == API_KEY and "authorization" not in req.headers
    assert "are you there?" in req.text()


def test_a_refused_key_keeps_the_turn_open_until_the_gateway_has_a_good_one(
    env: dict[str, str], fake: FakeAnthropic
) -> None:
    with running_hive({**env, "ANTHROPIC_API_KEY": "sk-ant-revoked"}) as hive:
        spawn(hive, "alice")
        h = HarnessProcess(hive, "alice")
        try:
            fake.script(text("answered with the new key"))
            operator_says(hive, "alice", "the question")
            h.wait_log("needs login")
            state = turn_state(hive, "alice")
            assert state["state"] == "needs_login"
            assert state["detail"].startswith("the Anthropic API refused the model gateway's key")
            assert h.conversation()["pending"][0]["body"] == "the question"
        except BaseException:
            h.stop()
            raise
    with running_hive(env) as hive, h:
        h.wait_log("turn ended")
    requests = fake.wait_requests(1)  # the refused attempt never reached the script
    assert len(requests) == 1 and "the question" in requests[0].text()


def test_a_hanging_tool_is_killed_with_its_process_group_at_the_timeout(
    hive: RunningHive, fake: FakeAnthropic
) -> None:
    spawn(hive, "alice")
    fake.script(
        tool("bash", command="sleep 300 & echo $! > sleeper.pid; echo started; wait"),
        text("it hung"),
    )
    # 3 s: ample for the command to start its job and say so, on a busy machine too
    with HarnessProcess(hive, "alice", env={"HIVE_AGENT_BASH_TIMEOUT": "3"}) as h:
        operator_says(hive, "alice", "run the slow thing")
        h.wait_log("turn ended")
        sleeper = int((h.state / "sleeper.pid").read_text())
    result = fake.wait_requests(2)[1].tool_results()[0]
    assert result["is_error"] is True
    assert result["content"].startswith("started")
    assert "timed out after 3 s" in result["content"]
    assert exits_within(sleeper, 30)


def test_a_prompt_too_long_compacts_and_tries_again(hive: RunningHive, fake: FakeAnthropic) -> None:
    spawn(hive, "alice")
    fake.script(
        text("first answer"),
        ApiError(400, message="prompt is too long: 212000 tokens > 200000 maximum"),
        text("SUMMARY: one question answered"),
        text("second answer"),
    )
    with HarnessProcess(hive, "alice") as h:
        operator_says(hive, "alice", "first question")
        h.wait_log("turn ended")
        operator_says(hive, "alice", "second question")
        h.wait_log("turn ended", count=2)
        h.wait_log("conversation compacted (#1)")
    *_, summary, retried = fake.wait_requests(4)
    assert summary.body["tool_choice"] == {"type": "none"}
    assert len(retried.messages) == 1 and "SUMMARY: one question answered" in retried.text()
    assert "second question" in retried.text()
