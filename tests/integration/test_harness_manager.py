"""The manager's harness (hm1nd on the manager socket): its prompt and tools, and a turn
driven by a `spawned` helper event that calls the hive's own tools.
"""

from __future__ import annotations

import json

from hyperhive.hive.names import MANAGER

from tests.fakeapi import FakeAnthropic, Reply, Request, text, tool
from tests.fakeapi.harness import (
    HarnessProcess,
    fake_api,  # noqa: F401 - the pytest fixture `fake`,
    recv,
)
from tests.hivetest import RunningHive, spawn


def drain_manager_inbox(hive: RunningHive) -> None:
    """Drop what hm1nd got before the test (its own bootstrap's event)."""
    with hive.manager() as client:
        while client.call("recv", wait_seconds=0)["message"] is not None:
            pass


def test_the_manager_reacts_to_a_spawned_event_with_hive_tools(
    hive: RunningHive, fake: FakeAnthropic
) -> None:
    drain_manager_inbox(hive)
    seen: list[dict[str, object]] = []

    def react(req: Request) -> Reply:
        """A model that reads the event from its inbox message and acts on it."""
        body = req.messages[-1]["content"][0]["text"].split("\n", 1)[1]
        event = json.loads(body)
        seen.append(event)
        return tool("request_init_config", name="carol")

    fake.script(
        react,
        tool("send", to="alice", body="welcome to the hive, alice: I am hm1nd"),
        text("greeted alice and prepared carol's config"),
    )
    with HarnessProcess(hive, MANAGER) as h:
        spawn(hive, "alice")  # the coordinator tells hm1nd with a `spawned` event
        greeting = recv(hive, "alice")
        h.wait_log("turn ended")
    assert seen == [{"event": "spawned", "agent": "alice", "ok": True, "note": None}]
    assert (greeting["sender"], greeting["recipient"]) == (MANAGER, "alice")
    assert "welcome to the hive" in str(greeting["body"])
    first, second, _ = fake.wait_requests(3)
    assert "helper event from the hive" in first.messages[-1]["content"][0]["text"]
    # request_init_config reached the coordinator: carol's proposed repo exists
    result = json.loads(second.tool_results()[0]["content"])
    assert result["path"] == "/agents/carol/config" and len(result["commit"]) == 40
    assert (hive.paths.proposed_repo("carol") / ".git").is_dir()
    # the manager's tools and prompt
    names = set(first.tool_names)
    manager_tools = {"request_apply_commit", "request_spawn", "request_init_config"}
    assert manager_tools | {"kill", "start", "restart", "send", "recv", "ask_operator"} <= names
    assert "never rubber-stamp" in first.system_text.lower()
    assert "container_crash" in first.system_text
    assert str(hive.paths.agents_dir) in first.system_text  # HIVE_AGENTS_DIR filled in
