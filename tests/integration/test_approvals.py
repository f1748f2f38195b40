"""Apply-commit and spawn approvals, end to end through the dispatcher and real git repos; the
ones that outlive a restart through the sockets of a real coordinator process."""

from __future__ import annotations

import git
import pytest
from hyperhive.hive.client import Refused
from hyperhive.hive.db import Approval, open_db
from hyperhive.hive.paths import Paths

from tests.hivetest import Hive, running_hive, spawn
from tests.inproc import InProcessHive
from tests.integration.flowtools import (
    commit_file,
    config_text,
    environ_of,
    harness_pid,
    manager_events,
    pid_alive,
    wait_for_event,
)


def request(hive: Hive, agent: str, ref: str) -> int:
    return int(hive.manager("request_apply_commit", agent=agent, commit_ref=ref)["id"])


def test_apply_commit_approved_changes_the_running_agent(inproc: InProcessHive) -> None:
    spawn(inproc, "alice")
    manager_events(inproc)
    old_pid = harness_pid(inproc, "alice")
    proposed, applied = inproc.paths.proposed_repo("alice"), inproc.paths.applied_repo("alice")
    sha = commit_file(
        proposed,
        "agent.toml",
        config_text('[environment]\nGREETING = "hello from the config"\n'),
        "give alice a greeting",
    )
    aid = request(inproc, "alice", sha)
    pending = inproc.admin("pending")["approvals"]
    assert [a["id"] for a in pending] == [aid]
    assert pending[0]["kind"] == "apply_commit" and pending[0]["commit_ref"] == sha
    assert '+GREETING = "hello from the config"' in pending[0]["diff"]
    assert pending[0]["status"] == "pending"

    assert inproc.admin("approve", id=aid)["approval"]["status"] == "approved"

    repo = git.Repo(applied)
    assert repo.head.commit.message.strip() == f"apply {sha} (approval #{aid})"
    applied_bytes = (applied / "agent.toml").read_bytes()
    assert applied_bytes == git.Repo(proposed).commit(sha).tree["agent.toml"].data_stream.read()
    new_pid = harness_pid(inproc, "alice")
    assert new_pid != old_pid and not pid_alive(old_pid)
    assert environ_of(new_pid)["GREETING"] == "hello from the config"

    events = manager_events(inproc)
    kinds = [e["event"] for e in events]
    assert kinds == ["rebuilt", "approval_resolved"]
    assert events[0] == {"event": "rebuilt", "agent": "alice", "ok": True, "note": None}
    assert events[1] == {
        "event": "approval_resolved",
        "id": aid,
        "agent": "alice",
        "commit_ref": sha,
        "status": "approved",
        "note": None,
    }
    with inproc.admin() as a:
        row = a.call("agent_status", name="alice")["agents"][0]
        assert row["applied_sha"] == sha and row["state"] == "running"
        with pytest.raises(Refused, match=f"approval #{aid} is already approved"):
            a.call("approve", id=aid)
        with pytest.raises(Refused, match="already approved"):
            a.call("deny", id=aid)


def test_deny_with_a_note(inproc: InProcessHive) -> None:
    spawn(inproc, "alice")
    manager_events(inproc)
    sha = commit_file(inproc.paths.proposed_repo("alice"), "agent.toml", config_text(), "small")
    aid = request(inproc, "alice", sha)
    config = inproc.paths.applied_repo("alice") / "agent.toml"
    before = config.read_bytes()
    assert inproc.admin("deny", id=aid, note="not today")["approval"]["status"] == "denied"
    assert config.read_bytes() == before
    assert manager_events(inproc) == [
        {
            "event": "approval_resolved",
            "id": aid,
            "agent": "alice",
            "commit_ref": sha,
            "status": "denied",
            "note": "not today",
        }
    ]
    with pytest.raises(Refused, match="already denied"):
        inproc.admin("approve", id=aid)


def test_a_later_commit_does_not_change_what_is_applied(inproc: InProcessHive) -> None:
    spawn(inproc, "alice")
    proposed = inproc.paths.proposed_repo("alice")
    first = commit_file(proposed, "agent.toml", config_text('model = "model-a"\n'), "a")
    aid = request(inproc, "alice", first)
    commit_file(proposed, "agent.toml", config_text('model = "model-b"\n'), "b")
    with inproc.admin() as a:
        a.call("approve", id=aid)
        assert a.call("agent_status", name="alice")["agents"][0]["model"] == "model-a"
    assert b'model = "model-a"' in (inproc.paths.applied_repo("alice") / "agent.toml").read_bytes()


BAD_COMMITS = [
    ("missing", "commit 'deadbeefdeadbeef' does not exist"),
    ("no-file", "has no agent.toml"),
    ("symlink", "is a symlink"),
    ("directory", "is not a regular file"),
    ("too-big", "over the 64 KiB limit"),
    ("bad-config", "unknown config key 'colour'"),
    ("bad-type", "config key 'packages' must be a list of strings"),
    ("option", "is not a commit sha or branch name"),
]


@pytest.mark.parametrize(("case", "fragment"), BAD_COMMITS, ids=[c for c, _ in BAD_COMMITS])
def test_bad_commits_are_refused_at_request_time(
    inproc: InProcessHive, case: str, fragment: str
) -> None:
    spawn(inproc, "alice")
    repo = inproc.paths.proposed_repo("alice")
    if case == "missing":
        ref = "deadbeefdeadbeef"
    elif case == "option":
        ref = "--output=/tmp/x"
    elif case == "no-file":
        ref = commit_file(repo, "agent.toml", None, "remove the config")
    elif case == "symlink":
        ref = commit_file(repo, "agent.toml", None, "x", link="/etc/passwd")
    elif case == "directory":
        commit_file(repo, "agent.toml", None, "remove")
        ref = commit_file(repo, "agent.toml/inner", b"x", "a directory")
    elif case == "too-big":
        ref = commit_file(repo, "agent.toml", b"# " + b"x" * 70_000 + b"\n", "huge")
    elif case == "bad-config":
        ref = commit_file(repo, "agent.toml", b'colour = "blue"\n', "bad key")
    else:
        ref = commit_file(repo, "agent.toml", b'packages = "vim"\n', "bad type")
    with pytest.raises(Refused, match=fragment):
        inproc.manager("request_apply_commit", agent="alice", commit_ref=ref)
    assert inproc.admin("pending")["approvals"] == []


def test_request_for_unknown_or_invalid_agents(inproc: InProcessHive) -> None:
    with inproc.manager() as m:
        with pytest.raises(Refused, match="no agent named 'ghost'"):
            m.call("request_apply_commit", agent="ghost", commit_ref="HEAD")
        with pytest.raises(Refused, match="is invalid"):
            m.call("request_apply_commit", agent="../etc", commit_ref="HEAD")


def test_spawn_approval(inproc: InProcessHive) -> None:
    manager_events(inproc)
    with inproc.manager() as m:
        init = m.call("request_init_config", name="bob")
        assert init["path"] == "/agents/bob/config"
        with pytest.raises(Refused, match="already has a proposed config repo"):
            m.call("request_init_config", name="bob")
    sha = commit_file(
        inproc.paths.proposed_repo("bob"),
        "agent.toml",
        config_text('model = "model-bob"\n'),
        "bob's role",
    )
    with inproc.manager() as m:
        aid = m.call("request_spawn", name="bob")["id"]
        with pytest.raises(Refused, match="already waiting"):
            m.call("request_spawn", name="bob")
        with pytest.raises(Refused, match="reserved for the manager"):
            m.call("request_spawn", name="hm1nd")
    with inproc.admin() as a:
        pend = a.call("pending")["approvals"]
        assert pend[0]["kind"] == "spawn" and pend[0]["agent"] == "bob"
        assert pend[0]["commit_ref"] == sha and '+model = "model-bob"' in pend[0]["diff"]
        resolved = a.call("approve", id=aid)["approval"]
        assert resolved["status"] == "approved"
        row = a.call("agent_status", name="bob")["agents"][0]
        assert row["state"] == "running" and row["model"] == "model-bob"
    assert pid_alive(harness_pid(inproc, "bob"))
    events = manager_events(inproc)
    assert {"event": "spawned", "agent": "bob", "ok": True, "note": None} in events
    assert events[-1]["event"] == "approval_resolved" and events[-1]["status"] == "approved"
    with inproc.manager() as m, pytest.raises(Refused, match="already exists"):
        m.call("request_spawn", name="bob")


def test_spawn_denied_creates_nothing(inproc: InProcessHive) -> None:
    aid = inproc.manager("request_spawn", name="carol")["id"]
    with inproc.admin() as a:
        a.call("deny", id=aid, note="no")
        assert "carol" not in [r["name"] for r in a.call("list")["agents"]]


def test_pending_approval_survives_a_restart(env: dict[str, str]) -> None:
    with running_hive(env) as hive:
        spawn(hive, "alice")
        sha = commit_file(
            hive.paths.proposed_repo("alice"),
            "agent.toml",
            config_text('model = "m-restart"\n'),
            "x",
        )
        aid = request(hive, "alice", sha)
    with running_hive(env) as hive, hive.admin() as a:
        assert [p["id"] for p in a.call("pending")["approvals"]] == [aid]
        assert a.call("approve", id=aid)["approval"]["status"] == "approved"
        assert a.call("agent_status", name="alice")["agents"][0]["model"] == "m-restart"


def test_an_approval_interrupted_mid_apply_is_finished_on_start(env: dict[str, str]) -> None:
    with running_hive(env) as hive:
        spawn(hive, "alice")
        sha = commit_file(
            hive.paths.proposed_repo("alice"), "agent.toml", config_text('model = "m-crash"\n'), "x"
        )
        aid = request(hive, "alice", sha)
    # what a coordinator killed between claiming and applying leaves behind
    open_db(Paths.from_env(env).db)
    Approval.update(status="applying").where(Approval.id == aid).execute()
    with running_hive(env) as hive:
        resolved = wait_for_event(hive, "approval_resolved")
        assert resolved["id"] == aid and resolved["status"] == "approved"
        with hive.admin() as a:
            done = a.call("pending", all=True)["approvals"]
        assert next(p for p in done if p["id"] == aid)["status"] == "approved"
        applied = hive.paths.applied_repo("alice")
        assert b'model = "m-crash"' in (applied / "agent.toml").read_bytes()
        assert git.Repo(applied).head.commit.message.strip() == f"apply {sha} (approval #{aid})"
