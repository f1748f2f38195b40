"""A second coordinator on the same state refuses, and the first one is left untouched."""

from __future__ import annotations

import subprocess
import sys
import tempfile

from tests.hivetest import REPO, RunningHive


def test_a_second_coordinator_on_the_same_state_refuses(hive: RunningHive) -> None:
    with hive.admin() as a:
        a.call("spawn", name="alice")
    # the second one would share the state, with sockets of its own elsewhere
    env = {**hive.env, "HIVE_RUNTIME_DIR": tempfile.mkdtemp(prefix="hh-", dir="/tmp")}
    second = subprocess.run(
        [sys.executable, "-m", "hyperhive.coordinator"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode == 1
    assert "a coordinator already runs on" in second.stderr
    assert f"pid {hive.proc.pid} " in second.stderr and "stop it first" in second.stderr
    # and the first is whole: its sockets answer, its agents are there
    with hive.admin() as a:
        assert [r["name"] for r in a.call("list")["agents"]] == ["hm1nd", "alice"]
    with hive.agent("alice") as alice:
        assert alice.call("whoami")["name"] == "alice"


def test_after_the_first_stops_the_next_one_starts(hive: RunningHive) -> None:
    hive.stop()
    again = RunningHive(hive.env)
    try:
        with again.admin() as a:
            assert a.call("whoami")["role"] == "admin"
    finally:
        again.stop()
