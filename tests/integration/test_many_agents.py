"""Many agents at once, through a real coordinator's sockets: a burst of spawns that do not
wait, and a restart that starts every agent again. Each must come up whole (its repos, its
marker, its payload), however the work interleaves; how fast is bench/spawn.py's question.
"""

from __future__ import annotations

import git
from hyperhive.hive.paths import Paths

from tests.hivetest import RunningHive, running_hive
from tests.integration.flowtools import harness_pid, pid_alive, wait_for_event

COUNT = 20


def names() -> list[str]:
    return [f"burst-{i:02d}" for i in range(COUNT)]


def spawn_together(hive: RunningHive) -> None:
    """`spawn {wait: false}` for every name back to back, then each one's `spawned` event."""
    wait_for_event(hive, "spawned")  # hm1nd's own
    with hive.admin() as a:
        for name in names():
            assert a.call("spawn", name=name, wait=False)["agent"]["state"] == "spawning"
    spawned = [wait_for_event(hive, "spawned", timeout=120) for _ in names()]
    assert sorted(e["agent"] for e in spawned) == names()
    assert [e for e in spawned if not e["ok"]] == []


def assert_whole(hive: RunningHive, paths: Paths) -> None:
    with hive.admin() as a:
        rows = {r["name"]: r for r in a.call("list")["agents"]}
    for name in names():
        assert rows[name]["state"] == "running", rows[name]
        assert pid_alive(harness_pid(hive, name))
        applied = git.Repo(paths.applied_repo(name))
        assert sorted(b.path for b in applied.head.commit.tree.blobs) == [
            "agent.toml",
            "harness.env",
        ]
        assert not applied.is_dirty(untracked_files=True)
        proposed = git.Repo(paths.proposed_repo(name))
        assert [b.path for b in proposed.head.commit.tree.blobs] == ["agent.toml"]
        assert paths.rev_marker(name).is_file()
        assert rows[name]["needs_update"] is False


def test_twenty_spawned_at_once_all_reach_running(hive: RunningHive) -> None:
    spawn_together(hive)
    assert_whole(hive, hive.paths)


def test_a_restarted_coordinator_starts_all_its_agents_again(env: dict[str, str]) -> None:
    with running_hive(env) as hive:
        spawn_together(hive)
        before = {name: harness_pid(hive, name) for name in names()}
    with running_hive(env) as hive:
        assert_whole(hive, hive.paths)
        after = {name: harness_pid(hive, name) for name in names()}
    assert all(after[n] != before[n] for n in names())  # started again, not left over
