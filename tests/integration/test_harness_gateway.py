"""The harness through the model gateway: the budget refusal shown as its turn state (the
turn kept open until the cap is raised), and no API key anywhere an agent can reach: not in its
harness's environment, not in what its tools see, not in its state dir or applied repo.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakeapi import API_KEY, FakeAnthropic, Reply, Request, text, tool
from tests.fakeapi.harness import (
    HarnessProcess,
    fake_api,  # noqa: F401 - the pytest fixture `fake`,
    operator_says,
    turn_state,
)
from tests.hivetest import RunningHive, hive_env, running_hive, spawn
from tests.integration.flowtools import environ_of, harness_pid
from tests.integration.test_gateway import set_cap, usage_rows


def test_an_agent_over_budget_shows_it_and_its_turn_waits_until_the_cap_is_raised(
    hive: RunningHive, fake: FakeAnthropic
) -> None:
    spawn(hive, "alice")
    set_cap(hive, "alice", 0.00001)  # the first answer passes it
    fake.script(
        tool("bash", command="echo half way"),  # under the cap when asked: answered
        text("done, after the raise"),  # refused at the gateway until the cap is raised
        text("the next message's answer"),
    )
    with HarnessProcess(hive, "alice") as h:
        operator_says(hive, "alice", "a task with a tool")
        h.wait_log("over budget: ")
        state = turn_state(hive, "alice")
        assert state["state"] == "over_budget"
        assert state["detail"].startswith("alice has spent $")
        assert "its total cap is $0.00 (agent.toml)" in state["detail"]
        # the turn is open, its message and the tool's result kept; the refused request
        # never reached the API
        conversation = h.conversation()
        assert conversation["pending"][0]["body"] == "a task with a tool"
        assert "half way" in json.dumps(conversation["messages"][-1])
        assert len(fake.requests) == 1
        # while over budget the inbox is left alone
        operator_says(hive, "alice", "another message")
        assert hive.admin("agent_status", name="alice")["agents"][0]["inbox"] == 1
        listed = hive.admin("agent_status", name="alice")["agents"][0]
        assert listed["budget"]["spent_usd"] > listed["budget"]["cap_usd"] == 0.00001
        assert listed["budget"]["over"]
        hive.admin("set_budget", name="alice", total_usd=100)  # the operator raises it
        h.wait_log("turn ended", count=2)  # woken by the gateway, not its 60 s recheck
        assert turn_state(hive, "alice")["state"] == "idle"
    resumed, following = fake.wait_requests(3)[1:]
    assert "half way" in json.dumps(resumed.tool_results())
    assert "another message" in following.text()


def model(req: Request) -> Reply:
    """alice runs one bash command when asked to show her environment; all else is noted."""
    if any(b.get("type") == "tool_result" for b in req.messages[-1]["content"]):
        return text("looked around")
    if "You are alice" in req.system_text and "show me your environment" in req.text():
        return tool("bash", command="env; tr '\\0' '\\n' < /proc/$$/environ; ls -la ~")
    return text("noted")


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[RunningHive, FakeAnthropic]]:
    """A hive whose process backend runs the real harness for every agent, the key only in
    the coordinator's environment (which hands it to the gateway alone)."""
    with FakeAnthropic(default=model) as fake:
        env = hive_env(
            tmp_path,
            HIVE_AGENT_COMMAND=f"{sys.executable} -m hyperhive.agent",
            ANTHROPIC_API_KEY=API_KEY,
            ANTHROPIC_BASE_URL=fake.url,
        )
        with running_hive(env) as hive:
            yield hive, fake


def files_holding(root: Path, secret: bytes) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            try:
                if secret in path.read_bytes():
                    found.append(str(path))
            except OSError:
                continue
    return found


def test_the_key_is_nowhere_an_agent_can_reach_yet_its_turn_succeeds(
    live: tuple[RunningHive, FakeAnthropic],
) -> None:
    hive, fake = live
    fake.wait_for(lambda r: "never rubber-stamp" in r.system_text.lower())  # hm1nd is up
    spawn(hive, "alice")
    hive.admin("send", to="alice", body="show me your environment")
    request = fake.wait_for(lambda r: "You are alice" in r.system_text and bool(r.tool_results()))
    seen_by_tools = json.dumps(request.tool_results())
    assert "HIVE_GATEWAY_SOCKET=" in seen_by_tools  # the bash tool ran, and printed its env
    assert API_KEY not in seen_by_tools and "ANTHROPIC_API_KEY" not in seen_by_tools
    # the harness processes the backend started (alice's and hm1nd's)
    for name in ("alice", "hm1nd"):
        env = environ_of(harness_pid(hive, name))
        assert env["HIVE_GATEWAY_SOCKET"] == str(hive.paths.gateway_socket(name))
        assert not [k for k in env if k.startswith("ANTHROPIC_")], env
        assert API_KEY not in "".join(env.values())
        assert files_holding(hive.paths.agent_state(name), API_KEY.encode()) == []
        assert files_holding(hive.paths.applied_repo(name), API_KEY.encode()) == []
    assert files_holding(hive.paths.gateway_dir, API_KEY.encode()) == []
    # the turn went through: metered under alice, with the API's own numbers
    rows = [r for r in usage_rows(hive) if r["agent"] == "alice"]
    assert len(rows) >= 1 and all(r["turn"] for r in rows)
