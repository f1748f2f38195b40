"""Files an agent controls, attacked as an agent would: links and special files planted where
the coordinator (root in production) writes, chmods, binds or removes. Each one must be
refused or replaced, and the "host" file the link points at must stay exactly as it was."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

from services.hive.client import Refused
from services.hive.paths import Paths
from tests.hivetest import RunningHive, running_hive
from tests.integration.flowtools import environ_of, harness_pid, pid_alive

SECRET = "root:x:0:0:host secret\n"


@pytest.fixture
def host_file(tmp_path: Path) -> Path:
    """Stands for /etc/shadow: outside every agent's reach, and it must stay as it is."""
    f = tmp_path / "host" / "secret"
    f.parent.mkdir()
    f.write_text(SECRET)
    f.chmod(0o600)
    return f


def unchanged(host_file: Path) -> bool:
    return host_file.read_text() == SECRET and stat.S_IMODE(host_file.stat().st_mode) == 0o600


def spawn(hive: RunningHive, *names: str) -> None:
    with hive.admin() as a:
        for name in names:
            assert a.call("spawn", name=name)["agent"]["state"] == "running"


# the model marker -----------------------------------------------------------------------------


@pytest.mark.parametrize("planted", ["symlink", "fifo", "temp-symlink"])
def test_set_model_never_writes_through_what_the_agent_planted(
    hive: RunningHive, host_file: Path, planted: str
) -> None:
    spawn(hive, "alice")
    state = hive.paths.agent_state("alice")
    marker = state / "hyperhive-model"
    if planted == "symlink":
        marker.symlink_to(host_file)
    elif planted == "fifo":
        os.mkfifo(marker)
    else:  # the temp file a predictable writer would use, and the marker too
        (state / ".hyperhive-model.tmp").symlink_to(host_file)
        marker.symlink_to(host_file)
    with hive.admin() as a:
        assert a.call("set_model", name="alice", model="claude-x")["model"] == "claude-x"
        assert a.call("list")["agents"]  # the loop was never blocked
    assert unchanged(host_file)
    assert not marker.is_symlink() and marker.read_text() == "claude-x\n"
    assert not [
        p
        for p in state.iterdir()
        if p.name.startswith(".hyperhive-model.") and p.name != ".hyperhive-model.tmp"
    ]  # no temp file of ours left behind
    # clearing removes whatever is at the marker (a link again), never its target
    marker.unlink()
    marker.symlink_to(host_file)
    with hive.admin() as a:
        assert a.call("set_model", name="alice", model=None)["model"] is None
    assert not marker.is_symlink() and not marker.exists() and unchanged(host_file)


def test_set_model_over_a_planted_directory_is_refused_clearly(hive: RunningHive) -> None:
    spawn(hive, "alice")
    (hive.paths.agent_state("alice") / "hyperhive-model").mkdir()
    with (
        hive.admin() as a,
        pytest.raises(Refused, match=r"agent-state/alice/hyperhive-model is a directory, not a"),
    ):
        a.call("set_model", name="alice", model="claude-x")
    with hive.admin() as a:  # refused means not half-done: the override is not recorded
        assert a.call("agent_status", name="alice")["agents"][0]["model_override"] is None


# the state dir --------------------------------------------------------------------------------


def test_state_dirs_are_out_of_the_managers_reach(hive: RunningHive) -> None:
    spawn(hive, "alice")
    state = hive.paths.agent_state("alice")
    assert hive.paths.agents_dir not in state.parents
    assert stat.S_IMODE(state.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert environ_of(harness_pid(hive, "alice"))["HIVE_AGENT_STATE"] == str(state)
    assert not hive.paths.legacy_agent_state("alice").exists()


def test_a_state_dir_replaced_by_a_symlink_is_refused_at_start(
    hive: RunningHive, tmp_path: Path
) -> None:
    spawn(hive, "alice")
    with hive.admin() as a:
        a.call("stop", name="alice")
    target = tmp_path / "host-dir"
    target.mkdir()
    target.chmod(0o755)
    state = hive.paths.agent_state("alice")
    shutil.rmtree(state)
    state.symlink_to(target, target_is_directory=True)
    with (
        hive.admin() as a,
        pytest.raises(Refused, match=r"^agent-state/alice is a symlink, not a directory: remove"),
    ):
        a.call("start", name="alice")
    assert stat.S_IMODE(target.stat().st_mode) == 0o755  # not chmod'ed 0700
    assert list(target.iterdir()) == []
    assert state.is_symlink()  # left for the operator to look at
    assert not (hive.paths.runtime_dir / "process" / "alice.pid").exists()  # never started
    with hive.admin() as a:
        assert a.call("agent_status", name="alice")["agents"][0]["state"] == "stopped"
        state.unlink()  # the operator's fix: the next start makes a fresh one
        assert a.call("start", name="alice")["agent"]["state"] == "running"
    assert state.is_dir() and not state.is_symlink()


def test_a_state_dir_that_is_a_fifo_is_refused_without_blocking(hive: RunningHive) -> None:
    spawn(hive, "alice")
    with hive.admin() as a:
        a.call("stop", name="alice")
    state = hive.paths.agent_state("alice")
    shutil.rmtree(state)
    os.mkfifo(state)
    with hive.admin(timeout=60) as a:
        with pytest.raises(Refused, match="agent-state/alice is a FIFO, not a directory"):
            a.call("start", name="alice")
        assert a.call("list")["agents"]


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another uid needs root")
def test_a_state_dir_owned_by_someone_else_is_refused(hive: RunningHive) -> None:
    spawn(hive, "alice")
    with hive.admin() as a:
        a.call("stop", name="alice")
    state = hive.paths.agent_state("alice")
    os.chown(state, 65534, -1)
    with hive.admin() as a, pytest.raises(Refused, match="is owned by uid 65534"):
        a.call("start", name="alice")
    assert state.stat().st_uid == 65534


# the move out of agents/ ----------------------------------------------------------------------


def test_old_layout_state_dirs_move_once_and_links_there_are_not_followed(
    env: dict[str, str], tmp_path: Path
) -> None:
    paths = Paths.from_env(env)
    with running_hive(env) as hive:
        spawn(hive, "alice")
    # what a hive from before agent-state/ looked like: state dirs under agents/
    legacy = paths.legacy_agent_state("alice")
    os.rename(paths.agent_state("alice"), legacy)
    (legacy / "notes.txt").write_text("remember me")
    shutil.rmtree(paths.agent_state_dir)
    host_dir = tmp_path / "host-dir"
    host_dir.mkdir()
    host_dir.chmod(0o755)
    (host_dir / "keep").write_text("x")
    paths.agent_dir("bob").mkdir()
    paths.legacy_agent_state("bob").symlink_to(host_dir, target_is_directory=True)
    paths.agent_dir("carol").mkdir()
    os.mkfifo(paths.legacy_agent_state("carol"))
    with running_hive(env) as hive:
        assert (paths.agent_state("alice") / "notes.txt").read_text() == "remember me"
        assert not legacy.exists()
        assert environ_of(harness_pid(hive, "alice"))["HIVE_AGENT_STATE"] == str(
            paths.agent_state("alice")
        )
        assert not paths.agent_state("bob").exists() and not paths.agent_state("carol").exists()
        assert paths.legacy_agent_state("bob").is_symlink()
        assert stat.S_IMODE(host_dir.stat().st_mode) == 0o755
        assert sorted(os.listdir(host_dir)) == ["keep"]
        log = hive.log()
        assert "agents/bob/state is a symlink, not a directory" in log
        assert "agents/carol/state is a FIFO, not a directory" in log
        pid = harness_pid(hive, "alice")
    assert not pid_alive(pid)
    # once only: a directory the manager plants under agents/ later is never moved
    planted = paths.legacy_agent_state("dave")
    planted.mkdir(parents=True)
    (planted / "seed").write_text("planted")
    with running_hive(env):
        assert not paths.agent_state("dave").exists() and (planted / "seed").exists()
