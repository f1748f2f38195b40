"""hivectl against a real coordinator: output, --json, exit codes 0 / 1 / 2."""

from __future__ import annotations

import json

from tests.hivetest import RunningHive, hivectl


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
