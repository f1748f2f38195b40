"""`hivectl tour`: the approval and question flows shown to a newcomer, without an API key.

The tour plays the manager's part — clearly labelled — through the manager socket: it
proposes a spawn, commits a config change with a real diff (as hm1nd: inside hm1nd's
container on the nspawn backend), and asks a question with options and a deadline. For
each it says what to click and what will happen, then waits (on the change feed, no
polling) until the operator has done it on the dashboard or with hivectl.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..hive.agentconfig import CONFIG_FILE
from ..hive.client import HiveClient, Refused
from ..hive.names import MANAGER
from ..hive.paths import Paths
from ..hive.vocab import ApprovalStatus, QuestionStatus

LABEL = "[tour · playing hm1nd]"
QUESTION_TTL = 600


class TourStopped(Exception):
    """A step did not happen in time, or the hive refused it; the message says which."""


@dataclass
class Tour:
    paths: Paths
    say: Callable[[str], None]
    step_timeout: float = 900.0
    web_url: str = "http://127.0.0.1:7800"

    # the operator's side: what the hive shows (admin socket, change feed) -------------------
    def admin(self, cmd: str, **fields: Any) -> dict[str, Any]:
        with HiveClient(self.paths.admin_socket, timeout=60) as c:
            return c.call(cmd, actor="hivectl tour", **fields)

    def manager(self, cmd: str, **fields: Any) -> dict[str, Any]:
        with HiveClient(self.paths.manager_socket, timeout=120) as c:
            return c.call(cmd, **fields)

    def wait_until(self, what: str, done: Callable[[], Any]) -> Any:
        """Block on the change feed until `done()` returns something, or give up."""
        deadline = time.monotonic() + self.step_timeout
        with HiveClient(self.paths.admin_socket, timeout=None) as feed:
            after = -1
            while True:
                got = done()
                if got:
                    return got
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TourStopped(f"nothing happened for {self.step_timeout:.0f} s: {what}")
                after = feed.call("watch", after=after, wait_seconds=min(left, 60))["changes"]

    def approval(self, aid: int) -> dict[str, Any] | None:
        rows = self.admin("pending", all=True)["approvals"]
        row = next((a for a in rows if a["id"] == aid), None)
        return row if row is not None and not ApprovalStatus(row["status"]).open else None

    # hm1nd's side ---------------------------------------------------------------------------
    def free_name(self) -> str:
        taken = {r["name"] for r in self.admin("list")["agents"]}
        return next(n for n in ("tour", *(f"tour-{i}" for i in range(2, 100))) if n not in taken)

    def commit_as_manager(self, agent: str, text: str) -> str:
        """Change `agent`'s config and commit it the way hm1nd does, in hm1nd's place."""
        script = (
            f"cd {{repo}} && cat > {CONFIG_FILE} && git add {CONFIG_FILE} && "
            "git commit -qm 'tour: a bigger model and a memory limit' && git rev-parse HEAD"
        )
        leader = _container_leader(MANAGER)
        if leader is not None:  # nspawn: inside hm1nd's container, as hm1nd's root
            env = _environ(leader)
            keep = [f"{k}={v}" for k, v in env.items() if k.startswith(("GIT_", "PATH", "HOME"))]
            argv = [
                "nsenter", "-t", str(leader), *_user_namespace(leader),
                "-m", "-u", "-i", "-p", "-r", "-w",
                "env", "-i", *keep, "/bin/sh", "-c",
                script.format(repo=f"/agents/{agent}/config"),
            ]  # fmt: skip
        else:  # the process backend: hm1nd runs as this same user, without isolation
            repo = self.paths.proposed_repo(agent)
            argv = ["/bin/sh", "-c", script.format(repo=f"'{repo}'")]
            env = {"PATH": "/usr/bin:/bin", "HOME": str(repo)}
            env.update(
                {k: MANAGER if "NAME" in k else f"{MANAGER}@hyperhive" for k in _GIT_IDENTITY}
            )
        out = subprocess.run(
            argv,
            input=text,
            capture_output=True,
            text=True,
            timeout=60,
            env=None if leader is not None else env,
        )
        if out.returncode != 0:
            raise TourStopped(f"the commit as hm1nd failed: {out.stderr.strip()}")
        return out.stdout.split()[-1]

    # the tour -------------------------------------------------------------------------------
    def run(self) -> str:
        say = self.say
        name = self.free_name()
        say(
            f"This tour plays the manager (hm1nd) through its socket, so you can see the\n"
            f"flows without an API key. Lines marked {LABEL} are the tour acting as hm1nd;\n"
            f"everything else is the real hive. Open the dashboard: {self.web_url}/\n"
            "(sign in with the link `hivectl login` prints), or answer with hivectl.\n"
        )
        # 1. a spawn ---------------------------------------------------------------------
        aid = int(self.manager("request_spawn", name=name)["id"])
        say(f"{LABEL} request_spawn {{name: {name!r}}}")
        say(
            f"→ approval #{aid} waits in ◆ appr0vals: a new agent named {name}, with its\n"
            f"  config one click away. Click ◆ APPR0VE (or `hivectl approve {aid}`): the hive\n"
            f"  builds its container (a spinner until it runs) and tells hm1nd `spawned`.\n"
            f"  DENY (or `hivectl deny {aid}`) and nothing is made.\n"
        )
        done = self.wait_until(f"approval #{aid}", lambda: self.approval(aid))
        say(f"✓ approval #{aid}: {done['status']}" + (f" ({done['note']})" if done["note"] else ""))
        if done["status"] != ApprovalStatus.APPROVED:
            say("The tour needs that agent for its next steps: run it again to see them.")
            return name
        # 2. a config change -----------------------------------------------------------
        config = (
            'model = "claude-opus-4-1"\n'
            f'system_prompt = """\nYou are {name}, made by the hyperhive tour.\n"""\n'
            'packages = []\n\n[limits]\nmemory = "1G"\n'
        )
        sha = self.commit_as_manager(name, config)
        aid = int(self.manager("request_apply_commit", agent=name, commit_ref=sha)["id"])
        say(f"\n{LABEL} committed to /agents/{name}/config ({sha[:12]}), then")
        say(f"{LABEL} request_apply_commit {{agent: {name!r}, commit_ref: {sha[:12]!r}}}")
        say(
            f"→ approval #{aid} shows the diff: exactly these bytes are applied, whatever the\n"
            "  repo holds later. APPR0VE restarts the agent with a bigger model and a 1G\n"
            f"  memory limit (hm1nd gets `approval_resolved` and `rebuilt`); DENY with a note\n"
            "  sends the note to hm1nd.\n"
        )
        done = self.wait_until(f"approval #{aid}", lambda: self.approval(aid))
        say(f"✓ approval #{aid}: {done['status']}" + (f" ({done['note']})" if done["note"] else ""))
        # 3. a question -------------------------------------------------------------------
        qid = int(
            self.manager(
                "ask_operator",
                question=f"The tour made {name}. What should happen to it now?",
                options=["keep it", "destroy it"],
                ttl_seconds=QUESTION_TTL,
            )["id"]
        )
        say(f"\n{LABEL} ask_operator {{options: [keep it, destroy it], ttl: {QUESTION_TTL} s}}")
        say(
            f"→ question #{qid} waits in ◆ quest1ons, its ◷ chip counting down 10 minutes.\n"
            f"  Pick an answer and ANSW3R ❯ (or `hivectl answer {qid} 'keep it'`); CANC3L\n"
            "  resolves it as [cancelled]; at zero it expires. hm1nd gets `operator_answered`.\n"
        )
        answered = self.wait_until(f"question #{qid}", lambda: self._question(qid))
        say(f"✓ question #{qid}: {answered['status']} ({answered['answer']})")
        if answered["answer"] == "destroy it":
            self.admin("destroy", name=name, purge=True)
            say(f"{LABEL} as asked: {name} destroyed.")
        else:
            say(f"{name} stays; `hivectl destroy {name} --purge` removes it.")
        say("\nThat is the whole loop: hm1nd proposes, you decide, the hive applies.")
        return name

    def _question(self, qid: int) -> dict[str, Any] | None:
        rows = self.admin("questions", all=True)["questions"]
        q = next((x for x in rows if x["id"] == qid), None)
        return q if q is not None and q["status"] != QuestionStatus.PENDING else None


_GIT_IDENTITY = ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL")


def _container_leader(machine: str) -> int | None:
    """The leader pid of a running nspawn container, or None (no machined, or no such one)."""
    if shutil.which("machinectl") is None:
        return None
    out = subprocess.run(
        ["machinectl", "show", "--property=Leader", "--value", machine],
        capture_output=True,
        text=True,
        timeout=10,
    )
    value = out.stdout.strip()
    return int(value) if out.returncode == 0 and value.isdigit() and value != "0" else None


def _user_namespace(pid: int) -> list[str]:
    """`-U` when the container has a user namespace of its own (its root is not ours); a
    container built before user namespaces shares the host's, which nsenter cannot enter."""
    own = os.readlink("/proc/self/ns/user")
    return ["-U"] if os.readlink(f"/proc/{pid}/ns/user") != own else []


def _environ(pid: int) -> dict[str, str]:
    """The environment of hm1nd's payload (the leader's child: nspawn runs it as pid 2)."""
    kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    raw = Path(f"/proc/{kids[0] if kids else pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def run(paths: Paths, say: Callable[[str], None], step_timeout: float, web_url: str) -> int:
    try:
        Tour(paths, say, step_timeout, web_url).run()
    except TourStopped as e:
        say(f"tour stopped: {e}")
        return 1
    except Refused as e:
        say(f"tour stopped: the hive refused: {e}")
        return 1
    return 0
