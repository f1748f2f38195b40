"""`hivectl tour` end to end: the tour plays hm1nd, the test plays the operator."""

from __future__ import annotations

import re
import subprocess
import sys
from typing import Any

from tests.hivetest import REPO, RunningHive


def admin(hive: RunningHive, cmd: str, **fields: Any) -> dict[str, Any]:
    with hive.admin() as a:
        return a.call(cmd, **fields)


def test_the_tour_walks_a_spawn_a_config_change_and_a_question(hive: RunningHive) -> None:
    tour = subprocess.Popen(
        [sys.executable, "-m", "hyperhive.cli", "tour", "--step-timeout", "120"],
        env=hive.env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert tour.stdout is not None
    said: list[str] = []
    decided: list[str] = []
    try:
        for line in tour.stdout:
            said.append(line)
            if m := re.match(r"→ approval #(\d+)", line):
                aid = int(m.group(1))
                row = next(a for a in admin(hive, "pending")["approvals"] if a["id"] == aid)
                decided.append(row["kind"])
                if row["kind"] == "apply_commit":  # a real diff, authored by hm1nd
                    assert '+model = "claude-opus-4-1"' in row["diff"], row["diff"]
                    assert "by hm1nd <hm1nd@hyperhive>" in row["diff"]
                admin(hive, "approve", id=aid)
            elif m := re.match(r"→ question #(\d+)", line):
                q = next(x for x in admin(hive, "questions")["questions"] if x["id"] == int(m[1]))
                assert q["options"] == ["keep it", "destroy it"] and q["deadline"] is not None
                admin(hive, "answer_question", id=q["id"], answer="keep it")
        assert tour.wait(60) == 0, "".join(said)
    finally:
        if tour.poll() is None:
            tour.kill()
            tour.wait()
    text = "".join(said)
    assert decided == ["spawn", "apply_commit"]
    assert "[tour · playing hm1nd]" in text and "✓ question" in text
    row = admin(hive, "agent_status", name="tour")["agents"][0]
    assert row["state"] == "running" and row["model"] == "claude-opus-4-1"
    with hive.manager() as m:  # hm1nd was told, as in a real run
        events = []
        while (msg := m.call("recv", wait_seconds=0)["message"]) is not None:
            events.append(msg["body"])
    joined = "\n".join(events)
    assert '"event":"spawned"' in joined.replace(" ", "")
    assert '"event":"operator_answered"' in joined.replace(" ", "")
