"""Who owns an agent's files under a user namespace, as the coordinator (root) manages them:
a state dir is its container root's, a root-owned one (from before user namespaces) moves into
the range once, one swapped or owned by anyone else is refused; the manager's repos are its
own, `agents/` stays root's; sockets are given to a container without following a link."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest
from hyperhive.coordinator import agentfiles
from hyperhive.hive import safefs
from hyperhive.hive.paths import Paths
from hyperhive.hive.userns import FIRST_BASE, SIZE, IdRange, give_socket

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="chown to another uid needs root")

ALICE = IdRange(FIRST_BASE + SIZE)
MANAGER = IdRange(FIRST_BASE)
SECRET = b"root:x:0:0:host secret\n"


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    (tmp_path / "state").mkdir()
    return Paths(state_dir=tmp_path / "state", runtime_dir=tmp_path / "run", db=tmp_path / "db")


@pytest.fixture
def host_file(tmp_path: Path) -> Path:
    f = tmp_path / "host-secret"
    f.write_bytes(SECRET)
    f.chmod(0o600)
    return f


def owner(path: Path) -> tuple[int, int]:
    st = path.lstat()
    return st.st_uid, st.st_gid


def test_a_new_state_dir_is_its_container_roots(paths: Paths) -> None:
    agentfiles.ensure_state_dir(paths, "alice", ALICE)
    state = paths.agent_state("alice")
    assert owner(state) == ALICE.root and stat.S_IMODE(state.stat().st_mode) == 0o700
    assert owner(paths.agent_state_dir) == (0, owner(paths.agent_state_dir)[1])
    agentfiles.write_model(paths, "alice", "claude-x", ALICE)
    assert owner(state / "hyperhive-model") == ALICE.root


def test_a_root_owned_state_dir_moves_into_the_range_once(paths: Paths, host_file: Path) -> None:
    state = paths.agent_state("alice")
    (state / "notes").mkdir(parents=True)
    (state / "notes" / "n").write_text("kept")
    (state / "as-1000").write_text("x")
    os.chown(state / "as-1000", 1000, 1000)
    (state / "foreign").write_text("x")
    os.chown(state / "foreign", 200000, 200000)
    (state / "to-host").symlink_to(host_file)
    os.mknod(state / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    agentfiles.ensure_state_dir(paths, "alice", ALICE)
    assert {p.name: owner(p) for p in [state, *state.rglob("*")]} == {
        "alice": ALICE.root,
        "notes": ALICE.root,
        "n": ALICE.root,
        "as-1000": (ALICE.base + 1000, ALICE.base + 1000),
        "foreign": (200000, 200000),
        "to-host": ALICE.root,
        "null": (0, 0),
    }
    assert host_file.read_bytes() == SECRET and owner(host_file) == (0, 0)
    # once: what the container does afterwards (it is its own) is not moved again
    os.chown(state / "notes" / "n", ALICE.base + 5, ALICE.base + 5)
    agentfiles.ensure_state_dir(paths, "alice", ALICE)
    assert owner(state / "notes" / "n") == (ALICE.base + 5, ALICE.base + 5)


@pytest.mark.parametrize("other", [MANAGER.base, 4242])
def test_a_state_dir_swapped_or_owned_by_someone_else_is_refused(paths: Paths, other: int) -> None:
    state = paths.agent_state("alice")
    state.mkdir(parents=True)
    (state / "f").write_text("x")
    os.chown(state, other, other)
    for call in (
        lambda: agentfiles.ensure_state_dir(paths, "alice", ALICE),
        lambda: agentfiles.write_model(paths, "alice", "claude-x", ALICE),
    ):
        with pytest.raises(safefs.UnsafePath) as refused:
            call()
        assert str(refused.value) == (
            f"alice's state dir agent-state/alice is owned by uid {other}, not {ALICE.base}: "
            "move it away and try again (the hive only uses directories it made)"
        )
    assert owner(state) == (other, other) and owner(state / "f") == (0, 0)
    assert not (state / "hyperhive-model").exists()


def test_a_state_dir_that_is_a_link_is_refused(paths: Paths, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    paths.agent_state_dir.mkdir(parents=True)
    paths.agent_state("alice").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(safefs.UnsafePath, match="agent-state/alice is a symlink"):
        agentfiles.ensure_state_dir(paths, "alice", ALICE)
    assert owner(elsewhere) == (0, 0)


def test_the_manager_gets_its_repos_but_not_what_holds_them(paths: Paths, host_file: Path) -> None:
    sha = agentfiles.install_proposed(
        paths, "alice", lambda p: _repo(p), if_missing=False, manager=MANAGER
    )
    assert sha == "built"
    repo = paths.proposed_repo("alice")
    assert {owner(p) for p in [repo, *repo.rglob("*")]} == {MANAGER.root}
    assert owner(paths.agents_dir) == (0, MANAGER.base)
    assert owner(paths.agent_dir("alice")) == (0, MANAGER.base)
    # a repo from before user namespaces (root's), one that is someone else's, and a link
    old = paths.proposed_repo("bob")
    old.mkdir(parents=True)
    (old / "agent.toml").write_text("x")
    (old / "to-host").symlink_to(host_file)
    theirs = paths.proposed_repo("carol")
    theirs.mkdir(parents=True)
    os.chown(theirs, 4242, 4242)
    paths.agent_dir("dave").symlink_to(host_file.parent, target_is_directory=True)
    agentfiles.give_agents_dir(paths, MANAGER)
    assert {owner(p) for p in [old, *old.rglob("*")]} == {MANAGER.root}
    assert owner(theirs) == (4242, 4242)
    assert owner(paths.agent_dir("bob")) == (0, MANAGER.base)
    assert stat.S_IMODE(paths.agent_dir("bob").stat().st_mode) == 0o750
    assert owner(host_file) == (0, 0) and owner(host_file.parent) == (0, 0)


def _repo(path: Path) -> str:
    path.mkdir()
    (path / "agent.toml").write_text("x")
    (path / ".git").mkdir()
    return "built"


def test_a_socket_is_given_to_its_container_and_a_planted_link_is_refused(
    paths: Paths, host_file: Path
) -> None:
    path = paths.agent_socket("alice")
    path.parent.mkdir(parents=True)
    s = socket.socket(socket.AF_UNIX)
    try:
        s.bind(str(path))
        give_socket(path, ALICE)
        assert owner(path) == ALICE.root
    finally:
        s.close()
    path.unlink()
    path.symlink_to(host_file)
    with pytest.raises(safefs.UnsafePath, match=r"hive\.sock is a symlink, not a socket"):
        give_socket(path, ALICE)
    assert owner(host_file) == (0, 0) and owner(path) == (0, 0)
