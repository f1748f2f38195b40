"""One "waiting on you" inbox: `hivectl waiting`, the dashboard's /waiting and its count, and
the `waiting_operator` state of an agent something waits on the operator for."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.webtest import RunningWeb
from tests.hivetest import RunningHive, hivectl, spawn
from tests.integration.flowtools import commit_file, config_text, harness_pid


@pytest.fixture
def web(hive: RunningHive, env: dict[str, str]) -> Iterator[RunningWeb]:
    running = RunningWeb(env)
    yield running
    running.stop()


def waiting(env: dict[str, str]) -> dict[str, Any]:
    out = hivectl(env, "--json", "waiting")
    assert out.returncode == 0, out.stderr
    body: dict[str, Any] = json.loads(out.stdout)["waiting"]
    return body


def states(hive: RunningHive) -> dict[str, str]:
    with hive.admin() as a:
        return {
            r["name"]: "waiting_operator" if r["waiting_operator"] else r["state"]
            for r in a.call("list")["agents"]
        }


def test_everything_that_waits_on_the_operator(
    hive: RunningHive, web: RunningWeb, env: dict[str, str]
) -> None:
    spawn(hive, "alice", "bob", "carol")
    sha = commit_file(hive.paths.proposed_repo("bob"), "agent.toml", config_text(), "c")
    with hive.manager() as m:
        aid = m.call("request_apply_commit", agent="bob", commit_ref=sha)["id"]
    with hive.agent("alice") as a:
        late = a.call("ask_operator", question="later?", ttl_seconds=3600)["id"]
        soon = a.call("ask_operator", question="now?", options=["y", "n"], ttl_seconds=600)["id"]
    os.kill(harness_pid(hive, "carol"), signal.SIGKILL)
    deadline = time.monotonic() + 30
    while states(hive)["carol"] != "failed":
        assert time.monotonic() < deadline
        time.sleep(0.1)

    w = waiting(env)
    assert w["count"] == 4
    assert [a["id"] for a in w["approvals"]] == [aid]
    assert [q["id"] for q in w["questions"]] == [soon, late]  # soonest deadline first
    assert [c["name"] for c in w["crashed"]] == ["carol"] and w["crashed"][0]["note"]
    assert states(hive) == {
        "hm1nd": "running",
        "alice": "waiting_operator",
        "bob": "waiting_operator",
        "carol": "failed",
    }
    listing = hivectl(env, "list").stdout
    assert next(x for x in listing.splitlines() if x.startswith("alice")).split()[2] == (
        "waiting_operator"
    )
    text = hivectl(env, "waiting").stdout
    assert text.startswith("4 thing(s) wait on you") and "hivectl start NAME" in text

    c = web.client()
    page = c.get("/waiting").text
    assert f'id="approval-{aid}"' in page and f'id="question-{soon}"' in page
    assert 'id="agent-carol"' in page and 'data-count="waiting">4<' in page
    assert 'id="agent-alice" data-status="waiting_operator"' in c.get("/").text

    hivectl(env, "deny", str(aid))
    hivectl(env, "answer", str(soon), "y")
    hivectl(env, "cancel-question", str(late))
    hivectl(env, "start", "carol")
    assert waiting(env)["count"] == 0 and hivectl(env, "waiting").stdout.strip() == (
        "nothing waits on you"
    )
    assert set(states(hive).values()) == {"running"}
