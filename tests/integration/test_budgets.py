"""Spending caps by period with real parts: a real coordinator and its model gateway in front
of the fake Messages API, the harness's own client, `hivectl budget` as the operator types it.
At a cap the gateway refuses, hm1nd hears `budget_reached` once, the operator's outbox and
waiting inbox have it; the operator's raise or reset lets the agent go on, and is in the
audit trail.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from typing import Any

import anthropic
import pytest
from hyperhive.agent.gateway import Gateway, Status

from tests.fakeapi import FakeAnthropic, text
from tests.fakeapi.harness import fake_api  # noqa: F401 - the pytest fixture `fake`
from tests.hivetest import RunningHive, hivectl, running_hive, spawn, wait_serving
from tests.integration.test_gateway import ask, client, set_cap


def budget_events(hive: RunningHive) -> list[dict[str, Any]]:
    """The budget_reached events sent to hm1nd."""
    with sqlite3.connect(hive.paths.db) as db:
        rows = db.execute(
            "SELECT body FROM messages WHERE recipient = 'hm1nd' AND sender = 'system'"
        )
        bodies = [json.loads(body) for (body,) in rows]
    return [b for b in bodies if b.get("event") == "budget_reached"]


def wait_events(hive: RunningHive, count: int, timeout: float = 30) -> list[dict[str, Any]]:
    """The events once there are `count` (the gateway writes them after its refusal; the
    coordinator's change feed wakes us when its doorbell rings)."""
    deadline = time.monotonic() + timeout
    after = -1
    with hive.admin() as admin:
        while len(got := budget_events(hive)) < count:
            assert time.monotonic() < deadline, got
            after = admin.call("watch", after=after, wait_seconds=5)["changes"]
    return got


def outbox_kinds(hive: RunningHive) -> list[tuple[str, str]]:
    with sqlite3.connect(hive.paths.db) as db:
        return list(db.execute("SELECT kind, key FROM outbox ORDER BY id"))


def wait_status(hive: RunningHive, name: str, seen: str) -> Status:
    """The gateway's status once it differs from `seen` (held by the gateway, not polled)."""
    gateway = Gateway(hive.paths.gateway_socket(name))
    try:
        return gateway.status(wait=60, seen=seen)
    finally:
        gateway.close()


def test_at_its_daily_cap_an_agent_stops_hm1nd_hears_once_and_the_operator_raises_it(
    hive: RunningHive, fake: FakeAnthropic, env: dict[str, str]
) -> None:
    spawn(hive, "alice", "bob")
    set_cap(hive, "alice", 0.00001, period="daily")  # one answer passes it
    c = client(hive, "alice")
    fake.script(text("the last one under the cap"))
    ask(c)
    status = wait_serving(hive.paths, "alice")
    assert status.over_budget and status.phase == "over_budget"
    assert "its daily cap is $0.00 (agent.toml)" in (status.detail or "")
    for _ in range(2):  # refused, and said once however often it is refused
        with pytest.raises(anthropic.PermissionDeniedError):
            ask(c, "one more")
    assert len(fake.requests) == 1

    (event,) = wait_events(hive, 1)
    assert event["agent"] == "alice" and event["period"] == "daily"
    assert event["cap_usd"] == 0.00001 and event["spent_usd"] > event["cap_usd"]
    notices = [key for kind, key in outbox_kinds(hive) if kind == "budget_reached"]
    assert len(notices) == 1 and notices[0].startswith("budget_reached:alice:daily:")
    waiting = hive.admin("waiting")["waiting"]
    assert [o["name"] for o in waiting["over_budget"]] == ["alice"] and waiting["count"] == 1
    listed = {a["name"]: a for a in hive.admin("list")["agents"]}
    assert listed["alice"]["budget"]["over"] and listed["alice"]["waiting_operator"]
    assert listed["bob"]["budget"] is None  # no cap, nothing in his way

    shown = hivectl(env, "budget", "alice")
    assert shown.returncode == 0, shown.stderr
    daily = next(line for line in shown.stdout.splitlines() if line.startswith("daily"))
    assert "$0.00" in daily and "agent.toml" in daily and "AT CAP" in daily
    assert "hivectl budget alice --daily N" in shown.stdout

    raised = hivectl(env, "budget", "alice", "--daily", "50")
    assert raised.returncode == 0, raised.stderr
    assert "operator" in raised.stdout and "AT CAP" not in raised.stdout
    assert wait_status(hive, "alice", status.state).usable  # the gateway took it at once
    fake.script(text("going on"))
    assert ask(c, "go on").content[0].text == "going on"
    assert len(budget_events(hive)) == 1

    trail = hive.admin("history", agent="alice")["decisions"]
    caps = [d for d in trail if d["action"] == "cap"]
    assert len(caps) == 1 and caps[0]["channel"] == "cli" and caps[0]["outcome"] == "ok"
    assert caps[0]["detail"]["daily_usd"] == 50


def test_the_config_cap_back_with_a_reset_counts_from_now(
    hive: RunningHive, fake: FakeAnthropic, env: dict[str, str]
) -> None:
    spawn(hive, "alice")
    set_cap(hive, "alice", 0.00001, period="monthly")
    c = client(hive, "alice")
    fake.script(text("spent"))
    ask(c)
    over = wait_serving(hive.paths, "alice")
    assert over.over_budget
    body = hive.admin("set_budget", name="alice", monthly_usd=None, reset=["monthly"])
    monthly = next(p for p in body["periods"] if p["period"] == "monthly")
    assert monthly["cap_usd"] == 0.00001 and monthly["source"] == "agent.toml"
    assert monthly["spent_usd"] == 0 and not monthly["over"] and body["over"] is None
    assert wait_status(hive, "alice", over.state).usable
    fake.script(text("under the cap again, then past it"))
    ask(c)
    again = wait_serving(hive.paths, "alice")
    assert again.over_budget  # a new count, reached again: a new event for the new window
    assert [e["period"] for e in wait_events(hive, 2)] == ["monthly", "monthly"]


def test_a_hive_default_applies_where_the_config_says_nothing(
    env: dict[str, str], fake: FakeAnthropic
) -> None:
    with running_hive({**env, "HIVE_BUDGET_TOTAL_USD": "0.00001"}) as hive:
        spawn(hive, "carol")
        shown = hive.admin("budget", name="carol")
        total = next(p for p in shown["periods"] if p["period"] == "total")
        assert total["cap_usd"] == 0.00001 and total["source"] == "hive default"
        fake.script(text("one"))
        ask(client(hive, "carol"))
        assert wait_serving(hive.paths, "carol").over_budget
        set_cap(hive, "carol", 10, period="total")  # the config's cap wins over the default
        assert hive.admin("budget", name="carol")["over"] is None


def test_bad_caps_are_refused_with_a_sentence_and_change_nothing(
    hive: RunningHive, env: dict[str, str]
) -> None:
    spawn(hive, "alice")
    for args, said in (
        (("--daily", "-3"), "must be from 0 to"),
        (("--daily", "lots"), "is not a number of US dollars"),
        (("--reset", "weekly"), "invalid choice"),
    ):
        got = hivectl(env, "budget", "alice", *args)
        assert got.returncode == 2 and said in got.stderr, (args, got.stderr)
    for fields, said in (
        ({"daily_usd": "5"}, "must be a number of US dollars"),
        ({"daily_usd": 1e12}, "must be from 0 to"),
        ({"reset": ["weekly"]}, "field 'reset' must list periods"),
        ({}, "needs a cap"),
    ):
        with hive.admin() as a:
            reply = a.request({"cmd": "set_budget", "name": "alice", **fields})
        assert not reply["ok"] and said in reply["error"], (fields, reply)
    with hive.admin() as a:
        reply = a.request({"cmd": "set_budget", "name": "zed", "daily_usd": 5})
    assert not reply["ok"] and reply["code"] == "not_found"
    assert all(p["cap_usd"] is None for p in hive.admin("budget", name="alice")["periods"])
    decided = hive.admin("history")["decisions"]
    assert not [d for d in decided if d["action"] == "cap" and d["outcome"] == "ok"]


def test_a_bad_hive_default_stops_the_coordinator_with_a_sentence(env: dict[str, str]) -> None:
    got = hivectl({**env, "HIVE_BUDGET_DAILY_USD": "ten"}, "serve", timeout=60)
    assert got.returncode != 0
    assert "HIVE_BUDGET_DAILY_USD='ten' in hive.env is not a number of US dollars" in got.stderr


def test_a_status_request_waiting_on_a_cap_is_woken_by_a_raise(
    hive: RunningHive, fake: FakeAnthropic
) -> None:
    spawn(hive, "alice")
    set_cap(hive, "alice", 0.00001, period="total")
    fake.script(text("spent"))
    ask(client(hive, "alice"))
    over = wait_serving(hive.paths, "alice")
    woke: list[Status] = []
    waiter = threading.Thread(target=lambda: woke.append(wait_status(hive, "alice", over.state)))
    waiter.start()
    hive.admin("set_budget", name="alice", total_usd=1)
    waiter.join(60)
    assert woke and woke[0].usable
