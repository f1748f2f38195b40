"""The harness as the hive runs it: the coordinator's process backend starts `python -m
hyperhive.agent` for hm1nd and for a spawned agent, with the environment it builds, and
both talk to the fake Messages API. Nothing here starts a harness by hand.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakeapi import API_KEY, FakeAnthropic, Reply, Request, text, tool
from tests.hivetest import RunningHive, hive_env


def model(req: Request) -> Reply:
    """A tiny model: alice answers the operator's ping; everything else is noted."""
    last = req.messages[-1]["content"]
    if any(b.get("type") == "tool_result" for b in last):
        return text("done")
    if "You are alice" in req.system_text and "ping from the operator" in req.text():
        return tool("send", to="operator", body="pong")
    return text("noted")


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[RunningHive, FakeAnthropic]]:
    with FakeAnthropic(default=model) as fake:
        env = hive_env(
            tmp_path,
            HIVE_AGENT_COMMAND=f"{sys.executable} -m hyperhive.agent",
            ANTHROPIC_API_KEY=API_KEY,
            ANTHROPIC_BASE_URL=fake.url,
        )
        hive = RunningHive(env)
        try:
            yield hive, fake
        finally:
            hive.stop()


def test_the_hive_runs_the_harness_for_the_manager_and_a_spawned_agent(
    live: tuple[RunningHive, FakeAnthropic],
) -> None:
    hive, fake = live
    # hm1nd is bootstrapped with its harness, which takes its own `spawned` event
    boot = fake.wait_for(lambda r: "never rubber-stamp" in r.system_text.lower())
    assert '"agent":"hm1nd"' in boot.text().replace(" ", "")
    with hive.admin() as admin:
        admin.call("spawn", name="alice")
        admin.call("send", to="alice", body="ping from the operator")
    # alice's harness (started by the backend) answers through its own socket
    reply = fake.wait_for(lambda r: "You are alice" in r.system_text and bool(r.tool_results()))
    sent = json.loads(reply.tool_results()[0]["content"])
    assert isinstance(sent["id"], int)
    # and hm1nd took a turn on alice's `spawned` event
    fake.wait_for(lambda r: "never rubber-stamp" in r.system_text.lower() and '"alice"' in r.text())
    with hive.admin() as admin:
        rows = {row["name"]: row for row in admin.call("list")["agents"]}
    assert rows["alice"]["state"] == "running"
    assert rows["alice"]["turn"] is not None
