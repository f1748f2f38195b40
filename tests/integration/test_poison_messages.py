"""Poison messages as an agent would send them, through the real sockets of a real
coordinator: sizes are bytes, no reply passes the line limit, and a message that can
never be delivered is set aside where the operator sees it and can drop it.

Before: `send` of 262,144 × é (512 KB of UTF-8, under the 1 MiB line limit) was taken,
its `recv` reply was 1.57 MB, the client could not read it, and it stayed at the head of
the inbox for ever with no operator command to remove it.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hyperhive.hive.client import HiveClient, Refused
from hyperhive.hive.protocol import MAX_BODY, MAX_BODY_ESCAPED, MAX_LINE, decode_reply, encode

from tests.browser.webtest import RunningWeb
from tests.hivetest import RunningHive, hivectl

POISON = "é" * 262_144  # 512 KiB of UTF-8 in 262,144 characters


class Wire:
    """A raw connection that sends exactly the bytes given and reads whole reply lines,
    however long (an attacker's client has no line limit of its own)."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(30)
        self.sock.connect(str(path))
        self.rfile = self.sock.makefile("rb")

    def ask(self, obj: dict[str, Any]) -> tuple[dict[str, Any], int]:
        """Send `obj` as UTF-8 JSON; (the reply, its line length in bytes)."""
        self.sock.sendall(json.dumps(obj, ensure_ascii=False).encode() + b"\n")
        return self.line()

    def send_raw(self, data: bytes) -> tuple[dict[str, Any], int]:
        self.sock.sendall(data)
        return self.line()

    def line(self) -> tuple[dict[str, Any], int]:
        raw = self.rfile.readline()
        assert raw.endswith(b"\n"), raw[:200]
        return decode_reply(raw), len(raw) - 1

    def close(self) -> None:
        self.rfile.close()
        self.sock.close()


@pytest.fixture
def wire(hive: RunningHive) -> Iterator[Wire]:
    with hive.admin() as a:
        a.call("spawn", name="alice")
    w = Wire(hive.paths.agent_socket("alice"))
    yield w
    w.close()


def test_the_512_kb_body_is_refused_in_bytes(hive: RunningHive, wire: Wire) -> None:
    with hive.admin() as a:
        a.call("spawn", name="bob")
    reply, _ = wire.ask({"cmd": "send", "to": "bob", "body": POISON})
    assert reply["ok"] is False
    assert reply["error"] == (
        f"field 'body' is {len(POISON.encode())} bytes of UTF-8, over the {MAX_BODY}-byte limit"
    )
    # The largest body that is allowed arrives whole, in a reply any client can read.
    biggest = "é" * (MAX_BODY // 2)
    sent, _ = wire.ask({"cmd": "send", "to": "bob", "body": biggest})
    assert sent["ok"], sent
    bob = Wire(hive.paths.agent_socket("bob"))
    try:
        got, size = bob.ask({"cmd": "recv", "wait_seconds": 5})
    finally:
        bob.close()
    assert got["message"]["id"] == sent["id"] and got["message"]["body"] == biggest
    assert size <= MAX_LINE
    with hive.agent("bob") as c:  # and the inbox is empty: nothing stuck
        assert c.call("recv", wait_seconds=0)["message"] is None


def test_control_characters_are_counted_as_they_travel(hive: RunningHive, wire: Wire) -> None:
    # 174,746 bytes that travel as 1,048,478 (\u0001 each): the request line fits, but the
    # recv reply around it would not.
    too_many = "\x01" * ((MAX_LINE - 100) // 6)
    reply, _ = wire.ask({"cmd": "send", "to": "alice", "body": too_many})
    assert reply["ok"] is False and "escaped as JSON" in reply["error"], reply
    fits = "\x01" * ((MAX_BODY_ESCAPED - 2) // 6)
    sent, _ = wire.ask({"cmd": "send", "to": "alice", "body": fits})
    assert sent["ok"], sent
    got, size = wire.ask({"cmd": "recv", "wait_seconds": 5})
    assert got["message"]["body"] == fits and size <= MAX_LINE


def test_a_lone_surrogate_is_refused_and_the_connection_lives(wire: Wire) -> None:
    for line in (
        b'{"cmd": "send", "to": "alice", "body": "a\\ud800b"}\n',
        b'{"cmd": "ask_operator", "question": "ok?", "options": ["yes", "\\udfff"]}\n',
        b'{"cmd": "set_turn_state", "state": "tool", "tool": "\\ud83d"}\n',
        b'{"cmd": "\\ud800"}\n',
    ):
        reply, _ = wire.send_raw(line)
        assert reply["ok"] is False and "not valid Unicode" in reply["error"], reply
    reply, _ = wire.ask({"cmd": "whoami"})
    assert reply["name"] == "alice"
    with HiveClient(wire.sock.getpeername()) as c, pytest.raises(Exception, match="surrogate"):
        c.call("send", to="alice", body="\ud800")  # the client refuses to send it at all


def insert_as_an_old_version(hive: RunningHive, recipient: str, body: str) -> int:
    """Store a message the way a version that counted characters did: straight into SQLite."""
    db = sqlite3.connect(hive.paths.db, timeout=10)
    try:
        with db:
            cur = db.execute(
                "INSERT INTO messages (sender, recipient, body, created_at) VALUES (?, ?, ?, ?)",
                ("operator", recipient, body, time.time()),
            )
        return int(cur.lastrowid or 0)
    finally:
        db.close()


# What a version that counted characters took: at most 262,144 of them in a request line
# of at most 1 MiB. This one travels as 1,048,506 bytes of \u0001 escapes, so its request
# fitted; the recv reply around it is ~100 bytes longer and cannot.
EDGE = "\x01" * ((MAX_LINE - 60) // 6)


def test_a_stored_message_too_large_to_deliver_is_set_aside_shown_and_dropped(
    hive: RunningHive,
) -> None:
    with hive.admin() as a:
        a.call("spawn", name="alice")
    poison = insert_as_an_old_version(hive, "alice", POISON)
    edge = insert_as_an_old_version(hive, "alice", EDGE)
    with hive.admin() as a:
        behind = a.call("send", to="alice", body="the next message")["id"]
    w = Wire(hive.paths.agent_socket("alice"))  # the harness's own calls: leased until ack
    try:
        got, size = w.ask({"cmd": "recv", "wait_seconds": 5, "ack": True})
        assert got["message"]["id"] == poison and got["message"]["body"] == POISON
        assert size <= MAX_LINE  # UTF-8 on the wire: 512 KiB, not 1.57 MB of \u escapes
        w.ask({"cmd": "ack", "id": poison})
        got, _ = w.ask({"cmd": "recv", "wait_seconds": 5, "ack": True})
        assert got["message"]["id"] == behind  # the edge one was set aside on the way
        w.ask({"cmd": "ack", "id": behind})
        got, _ = w.ask({"cmd": "recv", "wait_seconds": 0})
        assert got["message"] is None
    finally:
        w.close()
    with hive.admin() as a:
        listed = a.call("inbox", name="alice")
        row = a.call("agent_status", name="alice")["agents"][0]
    (stuck,) = listed["messages"]
    assert stuck["id"] == edge and stuck["status"] == "set_aside"
    assert stuck["size"] == len(EDGE) and stuck["preview"] == " " * 80
    assert f"over the {MAX_LINE}-byte line limit" in stuck["reason"]
    assert row["set_aside"] == 1 and row["inbox"] == 0
    assert f"message #{edge} to alice set aside" in hive.log()

    out = hivectl(hive.env, "inbox", "alice")
    assert out.returncode == 0 and str(edge) in out.stdout and "set_aside" in out.stdout
    out = hivectl(hive.env, "drop", str(edge))
    assert out.returncode == 0 and f"message #{edge} to alice: dropped" in out.stdout
    with hive.admin() as a:
        assert a.call("inbox", name="alice")["messages"] == []
        statuses = {
            m["id"]: m["status"] for m in a.call("inbox", name="alice", all=True)["messages"]
        }
        assert statuses[edge] == "dropped" and statuses[behind] == "delivered"
        assert a.call("agent_status", name="alice")["agents"][0]["set_aside"] == 0
        with pytest.raises(Refused, match="already dropped"):
            a.call("drop", id=edge)
        with pytest.raises(Refused, match="already delivered"):
            a.call("drop", id=behind)
    assert hivectl(hive.env, "drop", str(edge)).returncode == 1


def test_the_operator_drops_a_queued_message_from_the_dashboard(
    hive: RunningHive, env: dict[str, str]
) -> None:
    with hive.admin() as a:
        a.call("spawn", name="alice")
        queued = a.call("send", to="alice", body="never mind")["id"]
    web = RunningWeb(env)
    try:
        c = web.client()
        page = c.get("/agent/alice").text
        assert f'action="/drop/{queued}"' in page
        dropped = c.post(f"/drop/{queued}").json()
        assert dropped["ok"] and dropped["dropped"]["status"] == "dropped"
        again = c.post(f"/drop/{queued}")
        assert again.status == 409 and "already dropped" in again.json()["message"]
        assert f'action="/drop/{queued}"' not in c.get("/agent/alice").text
    finally:
        web.stop()
    with hive.agent("alice") as agent:  # a dropped message is never delivered
        assert agent.call("recv", wait_seconds=0)["message"] is None


def test_an_agent_may_set_aside_only_its_own_messages(hive: RunningHive) -> None:
    with hive.admin() as a:
        a.call("spawn", name="alice")
        a.call("spawn", name="bob")
        for_bob = a.call("send", to="bob", body="bob's")["id"]
        for_alice = a.call("send", to="alice", body="alice's")["id"]
    with hive.agent("alice") as c:
        with pytest.raises(Refused, match=f"no undelivered message #{for_bob} for alice"):
            c.call("set_aside", id=for_bob, reason="not mine")
        assert c.call("set_aside", reason="cannot read it")["id"] == for_alice  # its head
        with pytest.raises(Refused, match="inbox of alice is empty"):
            c.call("set_aside", reason="again")
        assert c.call("recv", wait_seconds=0)["message"] is None
    with hive.admin() as a:
        (aside,) = a.call("inbox", name="alice")["messages"]
        assert aside["reason"] == "the harness: cannot read it"
        assert [m["status"] for m in a.call("inbox", name="bob")["messages"]] == ["queued"]


def test_listings_leave_out_their_oldest_items_to_fit(hive: RunningHive) -> None:
    """30 questions of 8,000 control characters: 1.4 MB of `questions` reply before."""
    with hive.admin() as a:
        a.call("spawn", name="alice")
    question = "\x07" * 8000
    with hive.agent("alice") as c:
        ids = [c.call("ask_operator", question=question)["id"] for _ in range(30)]
    out = hivectl(hive.env, "--json", "questions")
    assert out.returncode == 0, out.stderr
    body = json.loads(out.stdout)
    shown = [q["id"] for q in body["questions"]]
    assert body["truncated"] is True and body["omitted"] == 30 - len(shown)
    assert shown == sorted(ids, reverse=True)[: len(shown)]  # the newest ones
    assert 15 <= len(shown) < 30
    with hive.admin() as a:
        assert len(encode(a.request({"cmd": "questions"}))) <= MAX_LINE
    assert "older questions not shown" in hivectl(hive.env, "questions").stdout
