"""Each container's git identity is its own agent: `git commit` works with no `-c` options
and records the committing agent, even in another agent's repo; the approval names it."""

from __future__ import annotations

import subprocess

from tests.hivetest import RunningHive
from tests.integration.flowtools import config_text, environ_of, harness_pid


def test_the_manager_commits_as_itself_in_another_agents_repo(hive: RunningHive) -> None:
    with hive.admin() as a:
        a.call("spawn", name="alice")
    env = environ_of(harness_pid(hive, "hm1nd"))  # what any process in hm1nd's container has
    repo = hive.paths.proposed_repo("alice")
    (repo / "agent.toml").write_bytes(config_text('model = "claude-opus-4-1"\n'))
    clean = {k: v for k, v in env.items() if not k.startswith("GIT_CONFIG")}
    clean["HOME"] = str(repo)  # no global git config of the test machine's user
    for argv in (["git", "add", "agent.toml"], ["git", "commit", "-qm", "bigger model"]):
        done = subprocess.run(argv, cwd=repo, env=clean, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    who = subprocess.run(
        ["git", "log", "-1", "--format=%an <%ae> / %cn <%ce>"],
        cwd=repo,
        env=clean,
        capture_output=True,
        text=True,
    ).stdout.strip()
    assert who == "hm1nd <hm1nd@hyperhive> / hm1nd <hm1nd@hyperhive>"
    sha = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True
    ).stdout.strip()
    with hive.manager() as m:
        aid = m.call("request_apply_commit", agent="alice", commit_ref=sha)["id"]
    with hive.admin() as a:
        diff = next(x for x in a.call("pending")["approvals"] if x["id"] == aid)["diff"]
    assert f"+++ proposed/alice/agent.toml @ {sha[:12]} by hm1nd <hm1nd@hyperhive>" in diff
    alice = environ_of(harness_pid(hive, "alice"))
    assert alice["GIT_AUTHOR_NAME"] == alice["GIT_COMMITTER_NAME"] == "alice"
