"""The seed's auto-update at start: a coordinator that opens on a platform its containers were
not built from rebuilds each of them once, even with hive-autoupdate running beside it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.hivetest import REPO, RunningHive
from tests.integration.flowtools import manager_events, wait_for_event


def rebuilt(events: list[dict[str, object]]) -> list[object]:
    return sorted(e["agent"] for e in events if e["event"] == "rebuilt")


@pytest.mark.parametrize("with_autoupdate", [False, True])
def test_a_new_platform_is_applied_at_start_once_per_container(
    env: dict[str, str], tmp_path: Path, with_autoupdate: bool
) -> None:
    platform = tmp_path / "platform"
    platform.mkdir()
    (platform / "platform.py").write_text("v1\n")
    env = {**env, "HIVE_PLATFORM_ROOT": str(platform)}
    hive = RunningHive(env)
    try:
        with hive.admin() as a:
            a.call("spawn", name="alice")
            a.call("spawn", name="bob")
            a.call("stop", name="bob")
        manager_events(hive)
    finally:
        hive.stop()
    (platform / "platform.py").write_text("v2\n")  # an upgrade while the hive was down
    hive = RunningHive(env)
    try:
        if with_autoupdate:  # hive-autoupdate.service starts beside it: the same rebuilds
            updater = subprocess.run(
                [sys.executable, "-m", "hyperhive.autoupdate"],
                env=env,
                cwd=REPO,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert updater.returncode == 0, updater.stderr
            seen = manager_events(hive)
        else:  # the coordinator alone: its scan at start
            seen = [wait_for_event(hive, "rebuilt") for _ in range(3)]
        with hive.admin() as a:
            rows = {r["name"]: r for r in a.call("list")["agents"]}
            assert not any(r["needs_update"] for r in rows.values()), rows
            assert rows["alice"]["state"] == "running" and rows["bob"]["state"] == "stopped"
            again = a.call("rebuild", name="alice", if_stale=True)
            assert again["skipped"] is True and again["ok_build"] is True
        assert rebuilt(seen + manager_events(hive)) == ["alice", "bob", "hm1nd"]  # once each
    finally:
        hive.stop()


def test_a_unit_rendered_by_older_code_is_rebuilt_at_start_once(env: dict[str, str]) -> None:
    """An upgrade's rebuild may run on the old coordinator: the markers are current, but what
    it applied is not what the new code renders. The restarted coordinator rebuilds it."""
    hive = RunningHive(env)
    try:
        with hive.admin() as a:
            a.call("spawn", name="alice")
        manager_events(hive)
        generated = hive.paths.applied_repo("alice") / "harness.env"
        current = generated.read_text()
    finally:
        hive.stop()
    generated.write_text(current + "WHAT_THE_OLD_CODE_RENDERED=1\n")
    hive = RunningHive(env)
    try:
        assert wait_for_event(hive, "rebuilt") == {
            "event": "rebuilt",
            "agent": "alice",
            "ok": True,
            "note": None,
        }
        assert generated.read_text() == current
        with hive.admin() as a:
            rows = {r["name"]: r for r in a.call("list")["agents"]}
            assert rows["alice"]["state"] == "running"
    finally:
        hive.stop()
    hive = RunningHive(env)  # once: nothing differs any more
    try:
        with hive.admin() as a:
            again = a.call("rebuild", name="alice", if_stale=True)
        assert again["skipped"] is True
        assert rebuilt(manager_events(hive)) == []
    finally:
        hive.stop()
