"""Who may do what on which socket, the socket modes, and refusals that keep connections usable."""

from __future__ import annotations

import json
import socket
import stat
from pathlib import Path

import pytest
from hyperhive.hive.client import HiveClient, Refused
from hyperhive.hive.protocol import MAX_LINE, decode_reply, encode

from tests.hivetest import RunningHive


class Raw:
    """A raw line-level connection, for bytes a well-behaved client would never send."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(20)
        self.sock.connect(str(path))
        self.rfile = self.sock.makefile("rb")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def reply(self) -> dict[str, object]:
        return decode_reply(self.rfile.readline(MAX_LINE * 2))

    def close(self) -> None:
        self.rfile.close()
        self.sock.close()


def test_whoami_is_the_socket(hive: RunningHive) -> None:
    with hive.admin() as a:
        a.call("spawn", name="alice")
        assert a.call("whoami")["name"] == "operator"
    with hive.manager() as m:
        assert m.call("whoami") == {"ok": True, "version": 1, "name": "hm1nd", "role": "manager"}
    with hive.agent("alice") as c:
        assert c.call("whoami")["name"] == "alice"
        assert c.call("whoami", name="hm1nd")["name"] == "alice"  # a field cannot change identity


def test_socket_modes(hive: RunningHive) -> None:
    with hive.admin() as a:
        a.call("spawn", name="alice")
    p = hive.paths
    assert stat.S_IMODE(p.admin_socket.stat().st_mode) == 0o660
    assert stat.S_ISSOCK(p.admin_socket.stat().st_mode)
    assert stat.S_IMODE(p.runtime_dir.stat().st_mode) == 0o751
    assert stat.S_IMODE(p.manager_socket_dir.stat().st_mode) == 0o751
    assert stat.S_IMODE(p.agent_socket_dir("alice").stat().st_mode) == 0o751
    assert stat.S_IMODE(p.agent_socket("alice").stat().st_mode) == 0o660
    assert stat.S_IMODE(p.manager_socket.stat().st_mode) == 0o660


@pytest.mark.parametrize(
    ("where", "cmd"),
    [
        ("agent", "list"),
        ("agent", "spawn"),
        ("agent", "kick"),
        ("agent", "agent_status"),
        ("manager", "spawn"),
        ("manager", "list"),
        ("admin", "recv"),
        ("admin", "set_turn_state"),
        ("admin", "get_model"),
    ],
)
def test_commands_refused_on_the_wrong_socket(hive: RunningHive, where: str, cmd: str) -> None:
    with hive.admin() as a:
        a.call("spawn", name="alice")
    client = {"agent": lambda: hive.agent("alice"), "manager": hive.manager, "admin": hive.admin}
    with client[where]() as c, pytest.raises(Refused, match="only available on"):
        c.call(cmd, name="bob")


BAD_LINES: list[tuple[bytes, str]] = [
    (b"hello\n", "not valid JSON"),
    (b"\n", "not valid JSON"),
    (b"\xff\xff\n", "UTF-8"),
    (b"[]\n", "JSON object"),
    (b'{"cmd": 7}\n', "'cmd'"),
    (b'{"cmd": "frobnicate"}\n', "unknown command 'frobnicate': see docs/sockets.md"),
    (b'{"cmd": "recv", "wait_seconds": "soon"}\n', "'wait_seconds' must be a number"),
    (b'{"cmd": "recv", "wait_seconds": 181}\n', "from 0 to 180"),
    (b'{"cmd": "recv", "wait_seconds": -1}\n', "from 0 to 180"),
    (b'{"cmd": "recv", "wait_seconds": true}\n', "must be a number"),
    (b'{"cmd": "send", "to": "bob"}\n', "'body' is required"),
    (b'{"cmd": "send", "to": 5, "body": "x"}\n', "'to' must be a string"),
    (b'{"cmd": "send", "to": "../../etc", "body": "x"}\n', "is invalid"),
    (b'{"cmd": "send", "to": "nobody", "body": "x"}\n', "no agent named 'nobody'"),
    (b'{"cmd": "send", "to": "alice", "body": ""}\n', "must not be empty"),
    (b'{"cmd": "set_turn_state", "state": "dancing"}\n', "must be one of"),
    (b'{"cmd": "set_turn_state", "state": "tool", "input_tokens": -3}\n', "input_tokens"),
]


@pytest.mark.parametrize(("line", "fragment"), BAD_LINES, ids=[b[1] for b in BAD_LINES])
def test_bad_lines_are_refused_and_the_connection_lives(
    hive: RunningHive, line: bytes, fragment: str
) -> None:
    with hive.admin() as a:
        a.call("spawn", name="alice")
    raw = Raw(hive.paths.agent_socket("alice"))
    try:
        raw.send(line)
        reply = raw.reply()
        assert reply["ok"] is False and reply["version"] == 1
        assert fragment in str(reply["error"])
        raw.send(encode({"cmd": "whoami"}))
        assert raw.reply()["name"] == "alice"
    finally:
        raw.close()


def inbox_of(hive: RunningHive, name: str) -> int:
    with hive.admin() as a:
        row = a.call("agent_status", name=name)["agents"][0]
    return int(row["inbox"])


def test_oversized_line_is_refused_and_the_connection_lives(hive: RunningHive) -> None:
    before = inbox_of(hive, "hm1nd")
    raw = Raw(hive.paths.admin_socket)
    try:
        big = json.dumps({"cmd": "send", "to": "hm1nd", "body": "x" * (MAX_LINE + 10)}).encode()
        raw.send(big + b"\n" + encode({"cmd": "whoami"}))
        first = raw.reply()
        assert first["ok"] is False and "over the 1048576-byte limit" in str(first["error"])
        assert raw.reply()["name"] == "operator"
    finally:
        raw.close()
    assert inbox_of(hive, "hm1nd") == before  # nothing half-written


def test_pipelined_requests_are_answered_in_order(hive: RunningHive) -> None:
    raw = Raw(hive.paths.admin_socket)
    try:
        raw.send(b"".join(encode({"cmd": "whoami", "n": i}) for i in range(200)))
        for _ in range(200):
            assert raw.reply()["name"] == "operator"
    finally:
        raw.close()


def test_admin_commands(hive: RunningHive) -> None:
    with hive.admin() as a:
        listed = a.call("list")["agents"]
        assert [r["name"] for r in listed] == ["hm1nd"]
        assert listed[0]["kind"] == "manager"
        spawned = a.call("spawn", name="alice")["agent"]
        assert spawned["name"] == "alice" and spawned["state"] == "running"
        assert hive.paths.agent_socket("alice").exists()
        assert hive.paths.agent_state("alice").is_dir()
        with pytest.raises(Refused, match="already exists"):
            a.call("spawn", name="alice")
        with pytest.raises(Refused, match="reserved for the manager"):
            a.call("spawn", name="hm1nd")
        with pytest.raises(Refused, match="is invalid"):
            a.call("spawn", name="../evil")
        assert not (Path(hive.env["HIVE_STATE_DIR"]).parent / "evil").exists()
        status = a.call("agent_status", name="alice")["agents"]
        assert [r["name"] for r in status] == ["alice"]
        with pytest.raises(Refused, match="no agent named 'bob'"):
            a.call("agent_status", name="bob")
        assert {r["name"] for r in a.call("agent_status")["agents"]} == {"hm1nd", "alice"}
        # the operator's spawn is reported to the manager
    with hive.manager() as m:
        bootstrap = m.call("recv", wait_seconds=0)["message"]
        assert json.loads(bootstrap["body"])["agent"] == "hm1nd"
        msg = m.call("recv", wait_seconds=0)["message"]
        assert msg["sender"] == "system"
        assert json.loads(msg["body"]) == {
            "event": "spawned",
            "agent": "alice",
            "ok": True,
            "note": None,
        }


def test_turn_state_and_model_round_trip(hive: RunningHive) -> None:
    with hive.admin() as a:
        a.call("spawn", name="alice")
    with hive.agent("alice") as c:
        assert c.call("get_model")["model"] is None
        c.call(
            "set_turn_state",
            state="tool",
            tool="bash",
            started_at=1.0,
            turn="1-abc",
            input_tokens=10,
            output_tokens=5,
            cached_tokens=2,
            cost_usd=0.01,
        )
    with hive.admin() as a:
        turn = a.call("agent_status", name="alice")["agents"][0]["turn"]
    assert turn["state"] == "tool" and turn["tool"] == "bash" and turn["turn"] == "1-abc"
    # the figures shown are the gateway's metering of that turn (none here), never the
    # harness's own claim
    assert (turn["input_tokens"], turn["cost_usd"]) == (0, 0)


def test_agent_sockets_come_back_after_a_restart(env: dict[str, str]) -> None:
    first = RunningHive(env)
    with first.admin() as a:
        a.call("spawn", name="alice")
    first.stop()
    assert not first.paths.admin_socket.exists()  # unlinked on a clean stop
    second = RunningHive(env)
    try:
        with second.agent("alice") as c:
            assert c.call("whoami")["name"] == "alice"
    finally:
        second.stop()


def test_a_second_coordinator_refuses_to_steal_the_sockets(hive: RunningHive) -> None:
    import subprocess
    import sys

    # Another state dir (the same one is refused earlier: test_single_coordinator.py), the
    # same runtime dir: the live sockets are never taken over.
    other_state = str(Path(hive.env["HIVE_STATE_DIR"]).parent / "other-state")
    out = subprocess.run(
        [sys.executable, "-m", "hyperhive.coordinator"],
        env={**hive.env, "HIVE_STATE_DIR": other_state},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 1
    assert "another process is serving" in out.stderr
    with HiveClient(hive.paths.admin_socket) as a:
        assert a.call("whoami")["name"] == "operator"
