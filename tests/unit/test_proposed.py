"""The proposed-repo reader without a coordinator: refs resolved only inside the copy, objects
whose headers announce too much never inflated, and a read that overruns abandoned."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path

import git
import pytest
from hyperhive.coordinator import proposed
from hyperhive.coordinator.repos import RepoError
from hyperhive.hive.paths import Paths

CONFIG = b'system_prompt = "x"\n'


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    p = Paths.from_env({"HIVE_STATE_DIR": str(tmp_path / "state")})
    p.state_dir.mkdir()
    return p


def make_repo(paths: Paths, agent: str = "alice") -> git.Repo:
    path = paths.proposed_repo(agent)
    path.mkdir(parents=True)
    repo = git.Repo.init(path, initial_branch="main")
    (path / "agent.toml").write_bytes(CONFIG)
    repo.index.add(["agent.toml"])
    repo.index.commit("first")
    return repo


def read(paths: Paths, ref: str | None, **limits: float) -> proposed.ConfigAtCommit | None:
    return proposed._read(paths, "alice", ref, proposed.ReadLimits(**limits), threading.Event())


def test_a_ref_is_resolved_and_the_copy_removed(paths: Paths) -> None:
    repo = make_repo(paths)
    got = read(paths, "main")
    author = repo.head.commit.author
    assert got == proposed.ConfigAtCommit(
        sha=repo.head.commit.hexsha, blob=CONFIG, author=f"{author.name} <{author.email}>"
    )
    assert read(paths, None) == got
    assert read(paths, repo.head.commit.hexsha[:7]) == got  # a short sha, from loose objects
    assert list(paths.private_tmp.iterdir()) == []


def test_no_repo_and_no_commit_mean_the_template(paths: Paths) -> None:
    assert read(paths, None) is None
    git.Repo.init(paths.proposed_repo("alice"), mkdir=True)
    assert read(paths, None) is None
    with pytest.raises(RepoError, match="commit 'main' does not exist in alice's proposed repo"):
        read(paths, "main")


@pytest.mark.parametrize(
    "head",
    [
        b"ref: refs/heads/../../../../etc/passwd\n",
        b"ref: /etc/passwd\n",
        b"ref: refs/heads/loop\n",  # loop -> loop
        b"not a sha\n",
    ],
)
def test_symbolic_refs_never_leave_the_copy(paths: Paths, head: bytes) -> None:
    repo = make_repo(paths)
    (Path(repo.git_dir) / "refs/heads/loop").write_bytes(b"ref: refs/heads/loop\n")
    (Path(repo.git_dir) / "HEAD").write_bytes(head)
    with pytest.raises(RepoError, match="commit 'HEAD' does not exist"):
        read(paths, "HEAD")
    assert read(paths, None) is None  # no resolvable HEAD: as if there were no commit


def test_a_tree_or_blob_sha_is_not_a_commit(paths: Paths) -> None:
    repo = make_repo(paths)
    tree = repo.head.commit.tree
    for sha in (tree.hexsha, tree["agent.toml"].hexsha):
        with pytest.raises(RepoError, match=f"{sha[:12]} in alice's proposed repo is not a commit"):
            read(paths, sha)


def test_an_object_announcing_too_much_is_never_inflated(paths: Paths) -> None:
    repo = make_repo(paths)
    big = repo.index.commit("x" * (proposed.MAX_OBJECT_BYTES + 1))  # a few KiB on disk
    with pytest.raises(RepoError, match=r"the commit \w{12} in alice's proposed repo is \d+ bytes"):
        read(paths, big.hexsha)


def test_limits_come_from_the_environment_and_must_be_positive() -> None:
    got = proposed.ReadLimits.from_env({"HIVE_REPO_READ_TIMEOUT": "2.5"})
    assert got == proposed.ReadLimits(timeout=2.5)
    for bad in ({"HIVE_REPO_READ_MAX_FILES": "0"}, {"HIVE_REPO_READ_TIMEOUT": "soon"}):
        with pytest.raises(ValueError, match=r"must be positive numbers: fix them in hive\.env"):
            proposed.ReadLimits.from_env(bad)


def _capture(failed: list[BaseException], fn: Callable[[], object]) -> None:
    try:
        fn()
    except BaseException as e:
        failed.append(e)


def test_a_read_that_overruns_is_refused_and_abandoned() -> None:
    seen = threading.Event()
    release = threading.Event()

    def stuck(abandoned: threading.Event) -> str:
        abandoned.wait(60)  # a copy loop checks this between files
        if abandoned.is_set():
            seen.set()
        release.wait(60)
        return "too late"

    async def run() -> None:
        with pytest.raises(
            RepoError, match=r"^reading alice's proposed repo took longer than 0.5 s: "
        ):
            await proposed.bounded("alice", proposed.ReadLimits(timeout=0.5), stuck)

    # A thread of its own: a browser test's driver may hold this thread's event loop.
    failed: list[BaseException] = []
    loop_thread = threading.Thread(target=lambda: _capture(failed, lambda: asyncio.run(run())))
    loop_thread.start()
    loop_thread.join(60)
    assert not failed, failed
    assert seen.wait(30), "the reader was not told it was abandoned"
    release.set()
