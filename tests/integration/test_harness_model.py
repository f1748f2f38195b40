"""The model of each turn: the agent config's default, the operator's override (admin
`set_model`) from the next turn on, and the override surviving a harness restart.
"""

from __future__ import annotations

from hyperhive.agent.settings import DEFAULT_MODEL

from tests.fakeapi import FakeAnthropic, text
from tests.fakeapi.harness import (
    HarnessProcess,
    admin,
    fake_api,  # noqa: F401 - the pytest fixture `fake`,
    operator_says,
)
from tests.hivetest import RunningHive, spawn


def test_without_an_override_the_built_in_default_model_is_used(
    hive: RunningHive, fake: FakeAnthropic
) -> None:
    spawn(hive, "alice")
    with HarnessProcess(hive, "alice") as h:
        operator_says(hive, "alice", "hello")
        h.wait_log("turn ended")
    assert fake.wait_requests(1)[0].model == DEFAULT_MODEL


def test_an_override_takes_effect_next_turn_and_survives_a_restart(
    hive: RunningHive, fake: FakeAnthropic
) -> None:
    spawn(hive, "alice")
    fake.script(text("one"), text("two"), text("three"))
    config = 'model = "claude-sonnet-4-5"\n'
    with HarnessProcess(hive, "alice", config=config) as h:
        operator_says(hive, "alice", "first")
        h.wait_log("turn ended")
        admin(hive, "set_model", name="alice", model="claude-opus-4-1")
        operator_says(hive, "alice", "second")
        h.wait_log("turn ended", count=2)
        h.stop()
        assert (h.state / "hyperhive-model").read_text().strip() == "claude-opus-4-1"
        h.start()
        operator_says(hive, "alice", "third, after a restart")
        h.wait_log("turn ended", count=3)
    models = [r.model for r in fake.wait_requests(3)]
    assert models == ["claude-sonnet-4-5", "claude-opus-4-1", "claude-opus-4-1"]
