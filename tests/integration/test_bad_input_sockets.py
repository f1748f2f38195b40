"""Hostile values in every field of every socket command: each gets a reply that is either
an answer or one clear refusal, nothing is created or removed outside the state and
runtime dirs, and the coordinator lives on without a traceback."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hyperhive.coordinator.registry import ADMIN, AGENT, MANAGER_ROLE, loaded
from hyperhive.hive.protocol import MAX_LINE, decode_reply, encode
from hyperhive.hive.vocab import Code

from tests.hivetest import RunningHive, hive_env

COMMANDS = loaded()

ABS_TARGET = "abs-target"
"""A file name that hostile absolute paths point at (inside the sandbox); it must never appear."""


def hostile_values(outer: Path) -> list[Any]:
    """Values no field should trip over: traversal, absolute paths, NUL, control characters,
    long strings, unicode look-alikes, huge and negative numbers, wrong types."""
    return [
        "../",
        "..",
        "../../../../etc/passwd",
        "../" * 12 + "victim",
        "alice/../bob",
        "alice/..",
        "./alice",
        f"{outer}/{ABS_TARGET}",
        f"/{ABS_TARGET}",
        "/etc/passwd",
        "alice\x00",
        "\x00../victim",
        "a\x01\x02\x07\x08\x1b[31m",
        "\t\r\n",
        "alice\n",
        "x" * 70_000,
        "a" * 300 * 1024,
        "ålice",
        "\u202eecila",
        "ａｌｉｃｅ",
        "😀" * 8,
        "ALICE",
        "",
        " ",
        "-rf",
        "--output=/tmp/hive-pwned",
        "HEAD~1000000",
        10**30,
        2**63,
        2**64 + 1,
        -1,
        -(2**63),
        0,
        0.5,
        -0.0,
        1e308,
        -1e308,
        ["alice"],
        ["../victim"],
        {"name": "alice"},
        True,
        False,
        None,
    ]


# A valid request per command and socket; each test replaces one field with a hostile value.
BASE: dict[str, dict[str, Any]] = {
    "whoami": {},
    "send": {"to": "bob", "body": "hello"},
    "recv": {"wait_seconds": 0, "ack": False},
    "ack": {"id": 1},
    "set_aside": {"id": 1, "reason": "r"},
    "get_model": {},
    "set_turn_state": {
        "state": "idle",
        "tool": "bash",
        "detail": "d",
        "started_at": 1.0,
        "ended_at": 2.0,
        "input_tokens": 1,
        "output_tokens": 1,
        "cached_tokens": 1,
        "cost_usd": 0.1,
    },
    "ask_operator": {"question": "q", "options": ["a", "b"], "multi": False, "ttl_seconds": 60},
    "await_cancel": {"wait_seconds": 0, "since": 0},
    "request_apply_commit": {"agent": "alice", "commit_ref": "HEAD"},
    "request_spawn": {"name": "carol"},
    "request_init_config": {"name": "dave"},
    "list": {},
    "agent_status": {"name": "alice"},
    "kick": {"name": "alice"},
    "inbox": {"name": "alice", "all": True},
    "drop": {"id": 1, "note": "n"},
    "spawn": {"name": "erin", "wait": True},
    "pending": {"all": True},
    "approve": {"id": 1, "wait": False},
    "deny": {"id": 1, "note": "n"},
    "questions": {"all": True},
    "answer_question": {"id": 1, "answer": "a"},
    "cancel_question": {"id": 1},
    "start": {"name": "alice"},
    "stop": {"name": "alice"},
    "restart": {"name": "alice"},
    "kill": {"name": "alice"},
    "destroy": {"name": "frank", "purge": True},  # frank exists to be destroyed
    "rebuild": {"name": "alice", "if_stale": False},
    "set_model": {"name": "alice", "model": "claude-sonnet-4-5"},
    "cancel_turn": {"name": "alice"},
    "watch": {"after": 0, "wait_seconds": 0},
    "login_link": {},
    "session_open": {"password": "not the password", "client": "fuzz"},
    "session_seen": {"id": 1},
    "session_close": {"id": 1},
    "sessions": {},
    "logout_all": {},
    "set_password": {"password": "a password long enough"},
    "action_link": {"item": "approval", "id": 1, "channel": "ntfy"},
    "action_redeem": {
        "secret": "s" * 43,
        "token": "t" * 64,
        "action": "approve",
        "answer": "a",
        "note": "n",
    },
    "history": {"agent": "alice", "since": 0},
    "waiting": {},
    "budget": {"name": "alice"},
    "set_budget": {"name": "alice", "daily_usd": 5, "reset": ["daily"]},
}
MANAGER_FIELDS = {"start", "restart", "kill"}  # the manager names its target `agent`
NAME_FIELDS = {"name", "agent", "to"}
OPTIONAL_NAME = {"agent_status", "history"}  # a null name there means "every agent"
SOCKET_OF = {ADMIN: "admin", MANAGER_ROLE: "manager", AGENT: "alice"}


def base_for(cmd: str, role: str) -> dict[str, Any]:
    if role == MANAGER_ROLE and cmd in MANAGER_FIELDS:
        return {"agent": "alice"}
    return dict(BASE[cmd])


def cases() -> list[tuple[str, str, str]]:
    out = []
    for name, command in sorted(COMMANDS.items()):
        for role in sorted(command.roles):
            for field in sorted(base_for(name, role)):
                out.append((name, role, field))
    return out


def test_every_command_has_a_base_request() -> None:
    assert set(BASE) == set(COMMANDS), "add the new command's fields to BASE"


def snapshot(root: Path, skip: tuple[Path, ...]) -> set[str]:
    """Every path under `root` (with its type), not descending into the `skip` dirs."""
    seen = set()
    for dirpath, dirs, files in os.walk(root):
        here = Path(dirpath)
        dirs[:] = [d for d in dirs if here / d not in skip]
        for entry in dirs + files:
            p = here / entry
            seen.add(f"{p.relative_to(root)}{'/' if p.is_dir() else ''}")
    return seen


class Sandbox:
    def __init__(self) -> None:
        self.outer = Path(tempfile.mkdtemp(prefix="hh-bad-", dir="/tmp"))
        self.outer.chmod(0o751)  # like /run: others may pass through to a socket
        self.root = self.outer / "a" / "b"
        self.runtime = self.outer / "rt"
        self.victim = self.outer / "a" / "victim"
        self.victim.mkdir(parents=True)
        (self.victim / "keep").write_text("do not touch\n")
        self.runtime.mkdir()
        self.env = hive_env(self.root)
        os.rmdir(self.env["HIVE_RUNTIME_DIR"])  # ours lives inside the sandbox instead
        self.env["HIVE_RUNTIME_DIR"] = str(self.runtime)
        self.state = Path(self.env["HIVE_STATE_DIR"])
        self.hive = RunningHive(self.env)
        with self.hive.admin() as a:
            a.call("spawn", name="alice")
            a.call("spawn", name="bob")
            a.call("spawn", name="frank")
        self.before = self.tree()

    def tree(self) -> set[str]:
        return {
            p
            for p in snapshot(self.outer, (self.state, self.runtime))
            if not p.endswith(".log")  # the coordinator's own log files
        }

    def path(self, role: str) -> Path:
        which = SOCKET_OF[role]
        if which == "admin":
            return self.hive.paths.admin_socket
        if which == "manager":
            return self.hive.paths.manager_socket
        return self.hive.paths.agent_socket(which)

    def close(self) -> int:
        code = self.hive.stop()
        shutil.rmtree(self.outer, ignore_errors=True)
        return code


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    box = Sandbox()
    yield box
    log = box.hive.log()
    code = box.close()
    assert code == 0, log


def pipeline(path: Path, reqs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Send every request on one connection, then read one reply per request, in order."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(60)
        s.connect(str(path))
        s.sendall(b"".join(encode(r) for r in reqs))
        rfile = s.makefile("rb")
        try:
            return [decode_reply(rfile.readline(MAX_LINE + 2)) for _ in reqs]
        finally:
            rfile.close()


def assert_clear(reply: dict[str, Any], what: str) -> None:
    assert isinstance(reply.get("ok"), bool) and reply.get("version") == 1, (what, reply)
    if reply["ok"]:
        return
    error = reply.get("error")
    assert isinstance(error, str) and error.strip(), (what, reply)
    assert reply.get("code") in {str(c) for c in Code}, (what, "a refusal carries its code", reply)
    assert "internal error" not in error and "Traceback" not in error, (what, error)
    assert len(error) < 600, (what, "a refusal is one sentence, not an echo", error[:200])


@pytest.mark.parametrize(("cmd", "role", "field"), cases())
def test_hostile_value_in_each_field(sandbox: Sandbox, cmd: str, role: str, field: str) -> None:
    values = hostile_values(sandbox.outer)
    reqs = [{"cmd": cmd, **base_for(cmd, role), field: value} for value in values]
    replies = pipeline(sandbox.path(role), reqs)
    for value, reply in zip(values, replies, strict=True):
        what = f"{cmd}.{field}={str(value)[:60]!r} on the {SOCKET_OF[role]} socket"
        assert_clear(reply, what)
        if field in NAME_FIELDS and not (cmd in OPTIONAL_NAME and value is None):
            assert reply["ok"] is False, (what, reply)
    assert sandbox.hive.alive(), sandbox.hive.log()


def test_traversal_names_leave_no_trace(sandbox: Sandbox) -> None:
    """Runs after the sweep (file order): nothing outside the state dir changed, no agent
    row or repo was made from a hostile name, and the coordinator logged no traceback."""
    assert sandbox.tree() == sandbox.before
    assert (sandbox.victim / "keep").read_text() == "do not touch\n"
    assert not Path("/tmp/hive-pwned").exists()
    assert not Path(f"/{ABS_TARGET}").exists()
    with sandbox.hive.admin() as a:
        names = {row["name"] for row in a.call("list")["agents"]}
        # erin comes from `spawn {wait: true|false}`; frank went with `destroy {purge: true}`
        assert names == {"hm1nd", "alice", "bob", "erin"}
        assert a.call("whoami")["name"] == "operator"
    valid = {"hm1nd", "alice", "bob", "erin"}
    hive_markers = {".network-migrated"}  # the hive's own, not an agent's
    for tree in (sandbox.hive.paths.agents_dir, sandbox.hive.paths.applied_dir):
        for entry in tree.iterdir():
            if entry.name in hive_markers:
                continue
            assert entry.name.lstrip(".").split(".")[0] in valid, entry
    assert "Traceback" not in sandbox.hive.log()
