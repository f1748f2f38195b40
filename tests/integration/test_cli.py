"""hivectl against a real coordinator: output, --json, exit codes 0 / 1 / 2."""

from __future__ import annotations

import json

from tests.hivetest import RunningHive, hivectl, spawn
from tests.integration.flowtools import commit_file, config_text


def test_list_spawn_send_status(hive: RunningHive) -> None:
    env = hive.env
    out = hivectl(env, "spawn", "alice")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "alice: running"
    out = hivectl(env, "send", "alice", "hi there")
    assert out.returncode == 0 and "sent message #" in out.stdout
    out = hivectl(env, "list")
    assert out.returncode == 0
    lines = out.stdout.splitlines()
    assert lines[0].split()[:3] == ["NAME", "KIND", "STATE"]
    alice = next(line for line in lines if line.startswith("alice"))
    assert alice.split()[5] == "1"  # one message waiting
    out = hivectl(env, "--json", "status", "alice")
    body = json.loads(out.stdout)
    assert body["ok"] is True and body["agents"][0]["inbox"] == 1


def test_decision_and_lifecycle_verbs(hive: RunningHive) -> None:
    """The verbs whose flows test_approvals, test_questions and test_lifecycle run in process."""
    spawn(hive, "alice")
    repo = hive.paths.proposed_repo("alice")
    sha = commit_file(repo, "agent.toml", config_text('model = "model-a"\n'), "a")
    aid = hive.manager("request_apply_commit", agent="alice", commit_ref=sha)["id"]
    pending = json.loads(hivectl(hive.env, "--json", "pending").stdout)["approvals"]
    assert [(a["id"], a["kind"], a["commit_ref"]) for a in pending] == [(aid, "apply_commit", sha)]
    assert '+model = "model-a"' in pending[0]["diff"] and pending[0]["status"] == "pending"
    out = hivectl(hive.env, "approve", str(aid))
    assert out.returncode == 0 and f"approval #{aid}: approved" in out.stdout, out.stderr

    sha = commit_file(repo, "agent.toml", config_text('model = "model-b"\n'), "b")
    bid = hive.manager("request_apply_commit", agent="alice", commit_ref=sha)["id"]
    out = hivectl(hive.env, "deny", str(bid), "--note", "not today")
    assert out.returncode == 0 and f"approval #{bid}: denied" in out.stdout, out.stderr
    out = hivectl(hive.env, "approve", str(bid))
    assert out.returncode == 1 and "already denied" in out.stderr

    qid = hive.manager("ask_operator", question="deploy now?", options=["yes", "no"])["id"]
    out = hivectl(hive.env, "answer", str(qid), "yes")
    assert out.returncode == 0 and "answered (yes)" in out.stdout, out.stderr
    qid = hive.manager("ask_operator", question="cancel me")["id"]
    assert hivectl(hive.env, "cancel-question", str(qid)).returncode == 0
    statuses = [q["status"] for q in hive.admin("questions", all=True)["questions"]]
    assert sorted(statuses) == ["answered", "cancelled"]

    assert hivectl(hive.env, "stop", "alice").returncode == 0
    assert hive.admin("agent_status", name="alice")["agents"][0]["state"] == "stopped"
    assert hivectl(hive.env, "destroy", "alice").returncode == 0
    assert "alice" not in [r["name"] for r in hive.admin("list")["agents"]]


def test_model_prints_the_model(hive: RunningHive) -> None:
    assert hivectl(hive.env, "spawn", "alice").returncode == 0
    assert hivectl(hive.env, "model", "alice").stdout.strip() == "the default model"
    assert hivectl(hive.env, "model", "alice", "claude-opus-4-1").stdout.strip() == (
        "claude-opus-4-1"
    )
    shown = hivectl(hive.env, "model", "alice").stdout.strip()
    assert shown == "claude-opus-4-1 (the operator's override)"
    assert hivectl(hive.env, "model", "alice", "--clear").stdout.strip() == "the default model"


def test_json_flag_works_before_and_after_the_subcommand(hive: RunningHive) -> None:
    for args in (("--json", "list"), ("list", "--json")):
        out = hivectl(hive.env, *args)
        assert out.returncode == 0
        assert json.loads(out.stdout)["agents"][0]["name"] == "hm1nd"


def test_refusal_exits_1_with_the_error_on_stderr(hive: RunningHive) -> None:
    out = hivectl(hive.env, "spawn", "Not_Valid")
    assert out.returncode == 1
    assert "is invalid" in out.stderr and out.stdout == ""
    out = hivectl(hive.env, "--json", "send", "ghost", "boo")
    assert out.returncode == 1
    assert json.loads(out.stdout) == {
        "ok": False,
        "error": "no agent named 'ghost': see `hivectl list`",
        "code": "not_found",
    }


def test_usage_errors_exit_2(hive: RunningHive) -> None:
    assert hivectl(hive.env, "frobnicate").returncode == 2
    assert hivectl(hive.env, "send", "alice").returncode == 2
    assert hivectl(hive.env).returncode == 2


def test_kick(hive: RunningHive) -> None:
    hivectl(hive.env, "spawn", "alice")
    out = hivectl(hive.env, "kick", "alice")
    assert out.returncode == 0 and "0 message(s) waiting" in out.stdout


def test_unreachable_coordinator_exits_1(env: dict[str, str]) -> None:
    out = hivectl(env, "list")
    assert out.returncode == 1
    assert "cannot reach the hive" in out.stderr and "hivectl serve" in out.stderr


def test_hive_c0re_alias_is_installed() -> None:
    import shutil
    import sys
    from pathlib import Path

    bindir = Path(sys.executable).parent
    assert (bindir / "hive-c0re").exists() or shutil.which("hive-c0re")
