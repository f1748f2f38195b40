"""Proposed repos attacked as the manager would: FIFOs and links planted where git reads,
alternates pointing at other repos, commits that do not exist, repos too large to copy.
Each request is refused with one sentence naming the path, and the admin socket keeps
answering while it is being read."""

from __future__ import annotations

import os
import secrets
import threading
from pathlib import Path
from typing import Any

import git
import pytest
from hyperhive.hive.client import Refused

from tests.hivetest import RunningHive, running_hive, spawn
from tests.integration.flowtools import commit_file, config_text

SECRET = b"root:x:0:0:host secret\n"


def request_in_background(hive: RunningHive, req: dict[str, Any]) -> tuple[threading.Thread, dict]:
    """Send a manager request on its own thread (it would block forever if the coordinator
    opened a FIFO); its reply lands in the returned dict."""
    got: dict[str, Any] = {}

    def run() -> None:
        with hive.manager(timeout=120) as m:
            got["reply"] = m.request(req)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, got


def planted_fifo(git_dir: Path, where: str, sha: str) -> tuple[str, str]:
    """Plant a FIFO where git reads; the ref to ask for and the path the refusal must name."""
    if where == "ref":
        os.mkfifo(git_dir / "refs/heads/x")
        return "x", ".git/refs/heads/x"
    if where == "loose-object":
        obj = git_dir / "objects" / sha[:2] / sha[2:]
        obj.unlink()
        os.mkfifo(obj)
        return sha, f".git/objects/{sha[:2]}/{sha[2:]}"
    os.mkfifo(git_dir / "packed-refs")
    return "main", ".git/packed-refs"


@pytest.mark.parametrize("where", ["ref", "loose-object", "packed-refs"])
def test_a_fifo_in_the_proposed_repo_is_refused_and_the_hive_keeps_answering(
    hive: RunningHive, where: str
) -> None:
    spawn(hive, "alice")
    repo = hive.paths.proposed_repo("alice")
    sha = commit_file(repo, "agent.toml", config_text('model = "m-fifo"\n'), "change")
    ref, path = planted_fifo(repo / ".git", where, sha)
    t, got = request_in_background(
        hive, {"cmd": "request_apply_commit", "agent": "alice", "commit_ref": ref}
    )
    with hive.admin(timeout=30) as a:  # answered while (or after) the repo is read
        assert "alice" in [r["name"] for r in a.call("list")["agents"]]
    t.join(60)
    assert not t.is_alive(), "the manager's request never got a reply"
    reply = got["reply"]
    assert not reply["ok"]
    assert reply["error"].startswith(f"agents/alice/config/{path} is a FIFO, not a regular file")
    with hive.admin() as a:
        assert a.call("pending")["approvals"] == []
    assert os.listdir(hive.paths.private_tmp) == []  # the private copy is gone


@pytest.mark.parametrize("where", ["ref", "git-dir", "objects"])
def test_links_in_the_proposed_repo_are_refused_not_followed(
    hive: RunningHive, tmp_path: Path, where: str
) -> None:
    spawn(hive, "alice")
    repo = hive.paths.proposed_repo("alice")
    secret = tmp_path / "secret"
    secret.write_bytes(SECRET)
    ref = "main"
    if where == "ref":  # a ref that is a link to a host file: its contents must never be echoed
        (repo / ".git/refs/heads/leak").symlink_to(secret)
        ref, path = "leak", ".git/refs/heads/leak"
    elif where == "git-dir":  # .git swapped for a link to another repo the manager cannot write
        other = tmp_path / "other"
        git.Repo.init(other)
        os.rename(repo / ".git", tmp_path / "moved")
        (repo / ".git").symlink_to(other / ".git", target_is_directory=True)
        path = ".git"
    else:
        objects = repo / ".git/objects"
        os.rename(objects, tmp_path / "objects")
        objects.symlink_to(tmp_path / "objects", target_is_directory=True)
        path = ".git/objects"
    with hive.manager() as m, pytest.raises(Refused) as refused:
        m.call("request_apply_commit", agent="alice", commit_ref=ref)
    assert str(refused.value).startswith(f"agents/alice/config/{path} is a symlink, not a")
    assert "host secret" not in str(refused.value)


def test_alternates_never_make_root_read_another_repo(hive: RunningHive, tmp_path: Path) -> None:
    spawn(hive, "alice")
    other = git.Repo.init(tmp_path / "other")
    (tmp_path / "other" / "agent.toml").write_bytes(config_text('model = "from-elsewhere"\n'))
    other.index.add(["agent.toml"])
    foreign = other.index.commit("not alice's").hexsha
    git_dir = hive.paths.proposed_repo("alice") / ".git"
    (git_dir / "objects/info").mkdir(exist_ok=True)
    (git_dir / "objects/info/alternates").write_text(f"{tmp_path / 'other/.git/objects'}\n")
    assert git.Repo(git_dir.parent).commit(foreign).hexsha == foreign  # git itself follows it
    with hive.manager() as m, pytest.raises(Refused) as refused:
        m.call("request_apply_commit", agent="alice", commit_ref=foreign)
    assert str(refused.value) == f"commit {foreign!r} does not exist in alice's proposed repo"


def test_a_sha_that_does_not_exist_is_named_not_an_internal_error(hive: RunningHive) -> None:
    spawn(hive, "alice")
    missing = secrets.token_hex(20)
    with hive.manager() as m:
        reply = m.request({"cmd": "request_apply_commit", "agent": "alice", "commit_ref": missing})
    assert reply["error"] == f"commit {missing!r} does not exist in alice's proposed repo"
    assert "internal error" not in hive.log() and "Traceback" not in hive.log()


def test_a_damaged_object_is_refused_without_quoting_it(hive: RunningHive) -> None:
    spawn(hive, "alice")
    repo = hive.paths.proposed_repo("alice")
    sha = commit_file(repo, "agent.toml", config_text('model = "m-damaged"\n'), "change")
    obj = repo / ".git" / "objects" / sha[:2] / sha[2:]
    obj.chmod(0o644)
    obj.write_bytes(SECRET)  # not zlib: whatever the reader says about it must not quote it
    with hive.manager() as m, pytest.raises(Refused) as refused:
        m.call("request_apply_commit", agent="alice", commit_ref=sha)
    assert str(refused.value) == (
        "alice's proposed repo could not be read (damaged objects): run git fsck in it and "
        "try again"
    )
    assert "host secret" not in hive.log()


def test_a_repo_over_the_copy_budget_is_refused(env: dict[str, str]) -> None:
    env["HIVE_REPO_READ_MAX_FILES"] = "40"
    env["HIVE_REPO_READ_MAX_BYTES"] = str(1024 * 1024)
    with running_hive(env) as hive:
        spawn(hive, "alice")
        repo = hive.paths.proposed_repo("alice")
        r = git.Repo(repo)
        for i in range(50):  # a file each under refs/tags
            r.create_tag(f"t{i}")
        with hive.manager() as m, pytest.raises(Refused) as refused:
            m.call("request_apply_commit", agent="alice", commit_ref="main")
        assert str(refused.value) == (
            "alice's proposed repo has more than 40 files in .git: pack it (git gc) and try again"
        )
        r.git.pack_refs("--all")  # the manager's way out
        with hive.manager() as m:
            assert m.call("request_apply_commit", agent="alice", commit_ref="t7")["commit_ref"]
        (repo / "blob.bin").write_bytes(secrets.token_bytes(2 * 1024 * 1024))
        r.index.add(["blob.bin"])
        r.index.commit("a large file")
        r.git.gc("--prune=now", "--quiet")
        with hive.manager() as m, pytest.raises(Refused) as refused:
            m.call("request_apply_commit", agent="alice", commit_ref="main")
        assert str(refused.value) == (
            "alice's proposed repo holds more than 1 MiB in .git: prune it "
            "(git gc --prune=now) and try again"
        )


def test_packed_refs_and_packs_are_read_from_the_copy(hive: RunningHive) -> None:
    spawn(hive, "alice")
    repo = hive.paths.proposed_repo("alice")
    sha = commit_file(repo, "agent.toml", config_text('model = "m-packed"\n'), "change")
    r = git.Repo(repo)
    r.create_tag("v1", message="an annotated tag")
    r.git.gc("--prune=now", "--quiet")  # every ref into packed-refs, every object into a pack
    assert not (repo / ".git/refs/tags/v1").exists() and (repo / ".git/packed-refs").is_file()
    with hive.manager() as m:
        for ref in ("main", "v1", "refs/heads/main", sha[:10], "HEAD"):
            got = m.call("request_apply_commit", agent="alice", commit_ref=ref)
            assert got["commit_ref"] == sha, ref
    with hive.admin() as a:
        pending = a.call("pending")["approvals"]
    assert all('+model = "m-packed"' in p["diff"] for p in pending)


def test_spawn_from_a_repo_with_a_fifo_fails_with_a_sentence(hive: RunningHive) -> None:
    with hive.manager() as m:
        m.call("request_init_config", name="gina")
    os.mkfifo(hive.paths.proposed_repo("gina") / ".git/refs/heads/trap")
    t, got = request_in_background(hive, {"cmd": "request_spawn", "name": "gina"})
    with hive.admin(timeout=30) as a:
        a.call("list")
        with pytest.raises(Refused, match=r"refs/heads/trap is a FIFO"):
            a.call("spawn", name="gina")
    t.join(60)
    assert not t.is_alive()
    assert "refs/heads/trap is a FIFO" in got["reply"]["error"]


def test_a_bind_into_the_hives_own_files_is_refused_at_request_and_at_render(
    hive: RunningHive,
) -> None:
    spawn(hive, "alice")
    repo = hive.paths.proposed_repo("alice")
    source = hive.paths.agent_state("hm1nd")  # the manager's /state, into alice's container
    bind = f'[[binds]]\nsource = "/{source}/."\ntarget = "/loot"\n'
    sha = commit_file(repo, "agent.toml", config_text(bind), "steal the manager's state")
    with hive.manager() as m, pytest.raises(Refused) as refused:
        m.call("request_apply_commit", agent="alice", commit_ref=sha)
    assert str(refused.value) == (
        f"config key 'binds[0].source' ({source}) overlaps the hive's own files at "
        f"{hive.paths.state_dir}: bind a directory outside it"
    )
    # a config applied before this check existed is refused when the container is rendered
    applied = hive.paths.applied_repo("alice") / "agent.toml"
    applied.write_bytes(config_text(bind))
    with hive.admin() as a:
        out = a.call("rebuild", name="alice")
    assert out["ok_build"] is False and "overlaps the hive's own files" in out["note"]
    assert out["agent"]["state"] == "failed"
