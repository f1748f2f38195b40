"""All seven helper events reach hm1nd's inbox from `system`, in the shapes of PROTOCOL.md,
each with a notification row for the dashboard."""

from __future__ import annotations

import os
import signal

from hyperhive.hive import events as ev
from hyperhive.hive.db import Notification, open_db

from tests.hivetest import RunningHive
from tests.integration.flowtools import (
    commit_file,
    config_text,
    harness_pid,
    manager_events,
    wait_for_event,
)

SHAPES = {
    "approval_resolved": {"event", "id", "agent", "commit_ref", "status", "note"},
    "spawned": {"event", "agent", "ok", "note"},
    "rebuilt": {"event", "agent", "ok", "note"},
    "killed": {"event", "agent"},
    "destroyed": {"event", "agent"},
    "container_crash": {"event", "agent", "note"},
    "operator_answered": {"event", "id", "question", "answer"},
}


def test_all_seven_events(hive: RunningHive) -> None:
    got = manager_events(hive)  # hm1nd's own spawned
    with hive.admin() as a:
        a.call("spawn", name="alice")
        a.call("spawn", name="bob")
    repo = hive.paths.proposed_repo("alice")
    sha = commit_file(repo, "agent.toml", config_text(), "change")
    with hive.manager() as m:
        aid = m.call("request_apply_commit", agent="alice", commit_ref=sha)["id"]
        qid = m.call("ask_operator", question="ok?")["id"]
    with hive.admin() as a:
        a.call("approve", id=aid)
        a.call("answer_question", id=qid, answer="fine")
        a.call("kill", name="bob")
        a.call("destroy", name="bob")
    got += manager_events(hive)
    os.kill(harness_pid(hive, "alice"), signal.SIGKILL)
    got.append(wait_for_event(hive, "container_crash"))
    assert {e["event"] for e in got} == set(SHAPES)
    for e in got:
        assert set(e) == SHAPES[e["event"]], e
        assert ev.from_dict(e).to_dict() == e
    open_db(hive.paths.db)
    assert {n.kind for n in Notification.select()} >= set(SHAPES)
