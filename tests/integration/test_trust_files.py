"""Files an agent controls, attacked as an agent would: links and special files planted where
the coordinator (root in production) writes, chmods, binds or removes. Each one must be
refused or replaced, and the "host" file the link points at must stay exactly as it was."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest
from hyperhive.hive.client import Refused
from hyperhive.hive.paths import Paths

from tests.hivetest import RunningHive, running_hive, spawn
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


# the agents dir and new proposed repos --------------------------------------------------------


def test_init_config_never_writes_through_a_planted_config(
    hive: RunningHive, host_file: Path
) -> None:
    config = hive.paths.proposed_repo("dave")
    config.mkdir(parents=True)
    (config / "agent.toml").symlink_to(host_file)
    with (
        hive.manager() as m,
        pytest.raises(Refused, match="dave already has a proposed config repo"),
    ):
        m.call("request_init_config", name="dave")
    assert unchanged(host_file)
    assert sorted(os.listdir(config)) == ["agent.toml"]


@pytest.mark.parametrize("what", ["agent-dir", "config-dir"])
def test_init_config_and_spawn_never_build_in_a_linked_directory(
    hive: RunningHive, tmp_path: Path, what: str
) -> None:
    host_dir = tmp_path / "host-dir"
    host_dir.mkdir()
    link = hive.paths.agent_dir("erin") if what == "agent-dir" else hive.paths.proposed_repo("erin")
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(host_dir, target_is_directory=True)
    expected = (
        "agents/erin is a symlink, not a directory"
        if what == "agent-dir"
        else "erin already has a proposed config repo"
    )
    with hive.manager() as m, pytest.raises(Refused, match=expected):
        m.call("request_init_config", name="erin")
    with hive.admin() as a, pytest.raises(Refused, match="is a symlink"):
        a.call("spawn", name="erin")  # the operator's spawn reads through the same walk
    assert list(host_dir.iterdir()) == []


def test_a_new_repo_appears_complete_and_the_scratch_dir_is_left_empty(hive: RunningHive) -> None:
    with hive.manager() as m:
        got = m.call("request_init_config", name="frank")
    repo = hive.paths.proposed_repo("frank")
    assert (repo / ".git").is_dir() and (repo / "agent.toml").is_file()
    assert len(got["commit"]) == 40
    assert os.listdir(hive.paths.private_tmp) == []
    assert stat.S_IMODE(hive.paths.private_tmp.stat().st_mode) == 0o700


# purge ----------------------------------------------------------------------------------------


def test_purge_removes_planted_links_never_their_targets(
    hive: RunningHive, host_file: Path
) -> None:
    spawn(hive, "bob", "carol")
    host_dir = host_file.parent
    bob = hive.paths.agent_dir("bob")
    # hm1nd plants in bob's agents entry; bob plants in its own /state
    (bob / "config" / "to-host-dir").symlink_to(host_dir, target_is_directory=True)
    (bob / "to-host-file").symlink_to(host_file)
    os.mkfifo(bob / "pipe")
    (hive.paths.agent_state("bob") / "to-host-dir").symlink_to(host_dir)
    (hive.paths.agent_state("bob") / "to-host-file").symlink_to(host_file)
    with hive.admin(timeout=60) as a:
        a.call("destroy", name="bob", purge=True)
    assert not bob.exists() and not hive.paths.agent_state("bob").exists()
    assert unchanged(host_file) and os.listdir(host_dir) == ["secret"]
    # carol's whole agents entry (and state dir) swapped for links to the host dir
    carol = hive.paths.agent_dir("carol")
    shutil.rmtree(carol)
    carol.symlink_to(host_dir, target_is_directory=True)
    shutil.rmtree(hive.paths.agent_state("carol"))
    hive.paths.agent_state("carol").symlink_to(host_dir, target_is_directory=True)
    with hive.admin(timeout=60) as a:
        a.call("destroy", name="carol", purge=True)
    assert not carol.is_symlink() and not carol.exists()
    assert not hive.paths.agent_state("carol").is_symlink()
    assert unchanged(host_file) and os.listdir(host_dir) == ["secret"]


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


# the agent's socket dir (its /run/hive) ---------------------------------------------------------


@pytest.mark.parametrize("planted", ["symlink-to-host-file", "file", "directory", "admin-socket"])
def test_what_an_agent_leaves_at_its_socket_path_is_removed_not_followed(
    env: dict[str, str], host_file: Path, planted: str
) -> None:
    paths = Paths.from_env(env)
    with running_hive(env) as hive:
        spawn(hive, "alice")
    sock = paths.agent_socket("alice")  # the agent's /run/hive/hive.sock, unlinked at stop
    if planted == "symlink-to-host-file":
        sock.symlink_to(host_file)
    elif planted == "file":
        sock.write_text("x")
    elif planted == "directory":
        (sock / "deep").mkdir(parents=True)
    else:  # a link to a live socket: probing it would "find a coordinator" and refuse to start
        sock.symlink_to(paths.admin_socket)
    with running_hive(env) as hive:
        with hive.agent("alice") as c:
            assert c.call("whoami")["name"] == "alice"
        assert unchanged(host_file)
