"""The audit trail after a scripted day of decisions: what was done, who did it, through which
channel, with what outcome — and a purge never deletes an agent's history."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.webtest import RunningWeb
from tests.hivetest import RunningHive, hivectl
from tests.integration.flowtools import commit_file, config_text


@pytest.fixture
def web(hive: RunningHive, env: dict[str, str]) -> Iterator[RunningWeb]:
    running = RunningWeb(env)
    yield running
    running.stop()


def request_change(hive: RunningHive, name: str, extra: str) -> int:
    sha = commit_file(hive.paths.proposed_repo(name), "agent.toml", config_text(extra), "c")
    with hive.manager() as m:
        return int(m.call("request_apply_commit", agent=name, commit_ref=sha)["id"])


def trail(env: dict[str, str], *args: str) -> list[dict[str, Any]]:
    out = hivectl(env, "--json", "history", *args)
    assert out.returncode == 0, out.stderr
    rows: list[dict[str, Any]] = json.loads(out.stdout)["decisions"]
    return rows


def test_a_day_of_decisions_is_the_history(
    hive: RunningHive, web: RunningWeb, env: dict[str, str]
) -> None:
    started = time.time()
    assert hivectl(env, "spawn", "alice").returncode == 0  # the CLI
    first = request_change(hive, "alice", 'model = "claude-opus-4-1"\n')
    c = web.client()  # a dashboard session (its login is in the trail too)
    assert c.post(f"/approve/{first}").json()["ok"]
    second = request_change(hive, "alice", 'model = "claude-haiku-4-5"\n')
    assert hivectl(env, "deny", str(second), "--note", "too small").returncode == 0
    with hive.agent("alice") as a:
        qid = a.call("ask_operator", question="go?", options=["yes", "no"])["id"]
    assert c.post(f"/answer-question/{qid}", {"answer": "yes"}).json()["ok"]
    with hive.manager() as m:
        m.call("restart", agent="alice")  # the manager's lifecycle action
    assert hivectl(env, "model", "alice", "claude-sonnet-4-5").returncode == 0
    assert hivectl(env, "approve", "999").returncode == 1  # refused: recorded as such
    assert hivectl(env, "destroy", "alice", "--purge").returncode == 0

    rows = list(reversed(trail(env)))  # oldest first
    got = [(r["action"], r["target"], r["channel"], r["outcome"]) for r in rows]
    assert got == [
        ("spawn", "alice", "cli", "ok"),
        ("login_link", "", "admin_socket", "ok"),
        ("login", "", "dashboard", "ok"),
        ("approve", "alice", "dashboard", "ok (applying)"),
        ("deny", "alice", "cli", "ok"),
        ("answer", "alice", "dashboard", "ok"),
        ("restart", "alice", "manager", "ok"),
        ("model", "alice", "cli", "ok"),
        ("approve", "approval #999", "cli", "refused: no approval #999: see `hivectl pending`"),
        ("destroy", "alice", "cli", "ok"),
    ], got
    approve = rows[3]
    assert approve["actor"].startswith("dashboard session #") and ", uid " in approve["actor"]
    assert approve["detail"]["id"] == first and len(approve["detail"]["diff_sha256"]) == 64
    assert rows[5]["detail"]["id"] == qid
    assert rows[0]["actor"].startswith("hivectl, uid ")
    assert all(started - 1 <= r["at"] <= time.time() + 1 for r in rows)
    # the purge kept alice's history; --agent and --since narrow it
    alice = trail(env, "--agent", "alice")
    assert [r["action"] for r in reversed(alice)] == [
        "spawn", "approve", "deny", "answer", "restart", "model", "destroy",
    ]  # fmt: skip
    assert trail(env, "--since", "1d") and not trail(env, "--since", str(time.time() + 60))
    assert "HIVE_ACTOR=" in hive.log() or "'HIVE_ACTOR'" in hive.log()
    page = c.get("/history").text
    assert f'id="hist-{rows[3]["id"]}"' in page and "dashboard session #" in page
