"""Who may use which socket: file modes keep strangers off the admin socket, the role table
keeps sub-agents off manager and admin commands, and identity is the socket, never a field."""

from __future__ import annotations

import contextlib
import grp
import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from hyperhive.coordinator import sockets
from hyperhive.coordinator.registry import ADMIN, AGENT, MANAGER_ROLE, loaded

from tests.hivetest import RunningHive
from tests.integration.test_bad_input_sockets import Sandbox, pipeline

COMMANDS = loaded()

ROLES = (ADMIN, MANAGER_ROLE, AGENT)


@pytest.fixture(scope="module")
def hive() -> Iterator[RunningHive]:
    box = Sandbox()  # agents alice, bob and frank
    yield box.hive
    log = box.hive.log()
    assert box.close() == 0, log


def socket_of(hive: RunningHive, role: str) -> Path:
    return {
        ADMIN: hive.paths.admin_socket,
        MANAGER_ROLE: hive.paths.manager_socket,
        AGENT: hive.paths.agent_socket("alice"),
    }[role]


# (a) the admin socket's file mode and group ----------------------------------------------

CLIENT = """
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1])
except PermissionError:
    print("EACCES"); sys.exit(0)
s.sendall(b'{"cmd": "whoami"}\\n')
print(json.loads(s.makefile("rb").readline())["name"])
"""


def run_as(path: Path, *setpriv: str) -> str:
    """A tiny client under another uid/gid (the system python: no repo, no venv needed)."""
    out = subprocess.run(
        ["setpriv", *setpriv, "/usr/bin/python3", "-c", CLIENT, str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd="/",
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None or not Path("/usr/bin/python3").exists(),
    reason="switching to user nobody needs root, setpriv (util-linux) and /usr/bin/python3",
)


@contextlib.contextmanager
def host_group(name: str) -> Iterator[int]:
    """The gid of group `name`, created for the test (and removed after) if the host has none."""
    try:
        gid = grp.getgrnam(name).gr_gid
    except KeyError:
        pass
    else:
        yield gid  # e.g. an installed hive's own group: use it, keep it
        return
    subprocess.run(["groupadd", "--system", name], check=True, capture_output=True, timeout=30)
    try:
        yield grp.getgrnam(name).gr_gid
    finally:
        subprocess.run(["groupdel", name], check=True, capture_output=True, timeout=30)


@needs_root
def test_only_the_socket_group_reaches_the_admin_socket() -> None:
    with host_group(sockets.ADMIN_GROUP) as gid:
        box = Sandbox()  # started after the group exists, as under hive-admin.socket
        try:
            path = box.hive.paths.admin_socket
            st = path.stat()
            assert stat.S_IMODE(st.st_mode) == 0o660
            assert st.st_gid == gid, f"the admin socket's group is {st.st_gid}, not hive-admin"
            stranger = ["--reuid=nobody", "--regid=nogroup", "--clear-groups"]
            assert run_as(path, *stranger) == "EACCES"
            for role in (MANAGER_ROLE, AGENT):  # the agents' sockets are no back door either
                assert run_as(socket_of(box.hive, role), *stranger) == "EACCES"
            member = ["--reuid=nobody", "--regid=nogroup", f"--groups={gid}"]
            assert run_as(path, *member) == "operator"
        finally:
            log = box.hive.log()
            assert box.close() == 0, log


def test_bind_unix_gives_the_socket_to_the_named_group(tmp_path: Path) -> None:
    gid = os.getgid()
    sock = sockets.bind_unix(tmp_path / "a.sock", group="no-such-group-here")
    sock.close()
    assert stat.S_IMODE((tmp_path / "a.sock").stat().st_mode) == 0o660
    assert (tmp_path / "a.sock").stat().st_gid == gid  # a missing group is not an error


@needs_root
def test_bind_unix_chowns_the_socket_to_a_group_that_exists(tmp_path: Path) -> None:
    with host_group(f"hh-test-{os.getpid()}") as other:
        assert other != os.getgid()
        sock = sockets.bind_unix(tmp_path / "b.sock", group=grp.getgrgid(other).gr_name)
        sock.close()
        st = (tmp_path / "b.sock").stat()
        assert st.st_gid == other and stat.S_IMODE(st.st_mode) == 0o660


# (b) the role table, command by command, socket by socket ---------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_every_command_is_refused_off_its_sockets(hive: RunningHive, role: str) -> None:
    names = sorted(COMMANDS)
    # bare requests: an allowed command may refuse a missing field, but never its socket
    replies = pipeline(socket_of(hive, role), [{"cmd": n} for n in names])
    refused_here = []
    for name, reply in zip(names, replies, strict=True):
        error = str(reply.get("error", ""))
        if role in COMMANDS[name].roles:
            assert "only available on" not in error and "unknown command" not in error, (
                name,
                reply,
            )
        else:
            assert reply["ok"] is False and "only available on" in error, (name, reply)
            refused_here.append(name)
    if role == AGENT:  # every manager-only and admin-only command, by name
        assert set(refused_here) == {n for n, c in COMMANDS.items() if AGENT not in c.roles}
        assert {"request_apply_commit", "request_spawn", "kill", "destroy", "list"} <= set(
            refused_here
        )
    with hive.admin() as a:  # and none of those refusals touched anything
        assert {r["name"] for r in a.call("list")["agents"]} == {"hm1nd", "alice", "bob", "frank"}


# (c) identity is the socket -------------------------------------------------------------

SPOOF = {
    "sender": "hm1nd",
    "from": "operator",
    "name": "carol",
    "agent": "bob",
    "caller": "system",
    "role": "admin",
    "as": "hm1nd",
}


def test_fields_do_not_change_who_you_are(hive: RunningHive) -> None:
    with hive.agent("alice") as alice, hive.agent("bob") as bob, hive.admin() as admin:
        assert alice.call("whoami", **SPOOF) == {
            "ok": True,
            "version": 1,
            "name": "alice",
            "role": "agent",
        }
        sent = alice.call("send", to="bob", body="from alice, truly", **SPOOF)["id"]
        got = bob.call("recv", wait_seconds=5, **{**SPOOF, "name": "alice"})["message"]
        assert got["id"] == sent and got["sender"] == "alice" and got["recipient"] == "bob"
        admin.call("send", to="bob", body="operator note", sender="hm1nd", **{"from": "system"})
        got = bob.call("recv", wait_seconds=5)["message"]
        assert got["sender"] == "operator"
        alice.call("set_turn_state", state="thinking", detail="mine", agent="bob", name="bob")
        turns = {r["name"]: r["turn"] for r in admin.call("list")["agents"]}
        assert turns["alice"]["state"] == "thinking"
        assert turns["alice"]["detail"] == "mine" and turns["bob"] is None
        qid = alice.call("ask_operator", question="who asks?", asker="hm1nd", **SPOOF)["id"]
        asked = {q["id"]: q for q in admin.call("questions")["questions"]}
        assert asked[qid]["asker"] == "alice"


def test_one_agent_cannot_read_or_ack_anothers_inbox(hive: RunningHive) -> None:
    with hive.admin() as admin:
        mid = admin.call("send", to="alice", body="for alice only")["id"]
    with hive.agent("bob") as bob:
        for spoof in ({}, {"name": "alice"}, {"to": "alice"}, {"agent": "alice"}):
            assert bob.call("recv", wait_seconds=0, **spoof)["message"] is None
        with hive.agent("alice") as alice:
            leased = alice.call("recv", wait_seconds=5, ack=True)["message"]
            assert leased["id"] == mid
            stolen = bob.request({"cmd": "ack", "id": mid})
            assert stolen == {
                "ok": False,
                "version": 1,
                "error": f"no message #{mid} for bob",
                "code": "not_found",
            }
        # alice went away without acking: the message is hers again, untouched by bob's ack
        assert bob.call("recv", wait_seconds=0)["message"] is None
    with hive.agent("alice") as alice:
        again = alice.call("recv", wait_seconds=5, ack=True)["message"]
        assert again["id"] == mid and again["body"] == "for alice only"
        assert alice.call("ack", id=mid)["acked"] is True
