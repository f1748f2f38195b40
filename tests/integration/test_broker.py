"""The broker through the real sockets of a real coordinator: wake-ups, exactly once, durability."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from hyperhive.hive.client import HiveClient, Refused
from hyperhive.hive.db import Message, open_db, write_tx
from hyperhive.hive.events import Killed
from hyperhive.hive.inbox import insert_message, notify_manager, ring_doorbell
from hyperhive.hive.protocol import decode_reply, encode

from tests.hivetest import RunningHive, running_hive, spawn


def drain(hive: RunningHive, name: str) -> list[dict[str, object]]:
    got = []
    with hive.agent(name) as c:
        while (m := c.call("recv", wait_seconds=0)["message"]) is not None:
            got.append(m)
    return got


class BackgroundRecv:
    """A `recv` waiting on a thread of its own, on a fresh connection; `reply()` joins it."""

    def __init__(self, connect: Callable[[], HiveClient], wait_seconds: float, drain: bool = False):
        self.result: dict[str, Any] = {}

        def run() -> None:
            with connect() as c:
                if drain:
                    drain_until_empty(c)
                t0 = time.monotonic()
                self.result["reply"] = c.call("recv", wait_seconds=wait_seconds)
                self.result["waited"] = time.monotonic() - t0

        self.thread = threading.Thread(target=run)
        self.thread.start()
        time.sleep(0.3)  # let it reach the coordinator and wait there

    def reply(self, timeout: float = 60) -> dict[str, Any]:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "recv was not woken"
        return dict(self.result["reply"])


def drain_until_empty(c: HiveClient) -> None:
    while c.call("recv", wait_seconds=0)["message"] is not None:
        pass


def test_send_then_recv(hive: RunningHive) -> None:
    spawn(hive, "alice", "bob")
    with hive.agent("alice") as alice:
        sent = alice.call("send", to="bob", body="hello bob")
    with hive.agent("bob") as bob:
        msg = bob.call("recv", wait_seconds=0)["message"]
        assert msg["id"] == sent["id"]
        assert (msg["sender"], msg["recipient"], msg["body"]) == ("alice", "bob", "hello bob")
        assert isinstance(msg["created_at"], float)
        assert bob.call("recv", wait_seconds=0)["message"] is None


def test_recv_is_woken_by_a_send_not_by_the_poll(env: dict[str, str]) -> None:
    env["HIVE_FALLBACK_POLL"] = "600"
    with running_hive(env) as hive:
        spawn(hive, "alice")
        waiting = BackgroundRecv(lambda: hive.agent("alice"), 120)
        with hive.admin() as a:
            a.call("send", to="alice", body="wake up")
        reply = waiting.reply()
        assert reply["message"]["body"] == "wake up"
        assert reply["message"]["sender"] == "operator"
        assert waiting.result["waited"] < 60  # far below both the wait and the poll


def test_recv_times_out_with_null(hive: RunningHive) -> None:
    spawn(hive, "alice")
    with hive.agent("alice") as c:
        assert c.call("recv", wait_seconds=0.2)["message"] is None


def test_disconnect_mid_wait_loses_nothing(hive: RunningHive) -> None:
    spawn(hive, "alice")
    for _ in range(5):
        s = socket.socket(socket.AF_UNIX)
        s.connect(str(hive.paths.agent_socket("alice")))
        s.sendall(encode({"cmd": "recv", "wait_seconds": 60}))
        time.sleep(0.05)
        s.close()
    time.sleep(0.2)
    with hive.admin() as a:
        ids = [a.call("send", to="alice", body=f"m{i}")["id"] for i in range(3)]
    assert [m["id"] for m in drain(hive, "alice")] == ids


def test_half_closed_waiter_gets_no_message(hive: RunningHive) -> None:
    spawn(hive, "alice")
    s = socket.socket(socket.AF_UNIX)
    s.connect(str(hive.paths.agent_socket("alice")))
    s.sendall(encode({"cmd": "recv", "wait_seconds": 60}))
    s.shutdown(socket.SHUT_WR)
    time.sleep(0.1)
    with hive.admin() as a:
        sent = a.call("send", to="alice", body="for a live reader")["id"]
    s.settimeout(10)
    reply = decode_reply(s.makefile("rb").readline())
    s.close()
    assert reply["message"] is None
    assert [m["id"] for m in drain(hive, "alice")] == [sent]


def test_messages_for_a_down_agent_survive_a_restart(env: dict[str, str]) -> None:
    with running_hive(env) as hive:
        spawn(hive, "alice")
        with hive.admin() as a:
            ids = [
                a.call("send", to="alice", body=f"while you were out {i}")["id"] for i in range(3)
            ]
    with running_hive(env) as hive:
        assert [m["id"] for m in drain(hive, "alice")] == ids


def test_many_senders_and_receivers_exactly_once(hive: RunningHive) -> None:
    names = [f"r{i}" for i in range(4)]
    spawn(hive, *names)
    per_sender, senders = 150, 4
    received: dict[str, list[int]] = {n: [] for n in names}
    lock = threading.Lock()
    stop = threading.Event()

    def receive(name: str) -> None:
        with hive.agent(name) as c:
            while not stop.is_set():
                m = c.call("recv", wait_seconds=0.5)["message"]
                if m is not None:
                    with lock:
                        received[name].append(m["id"])

    def send(k: int) -> list[int]:
        out = []
        with hive.admin() as a:
            for i in range(per_sender):
                out.append(a.call("send", to=names[(k + i) % len(names)], body=f"{k}:{i}")["id"])
        return out

    # two receivers per agent, so deliveries race
    threads = [threading.Thread(target=receive, args=(n,)) for n in names for _ in range(2)]
    for t in threads:
        t.start()
    sent: list[int] = []
    send_threads = []
    results: list[list[int]] = [[] for _ in range(senders)]
    for k in range(senders):
        th = threading.Thread(target=lambda k=k: results[k].extend(send(k)))
        send_threads.append(th)
        th.start()
    for th in send_threads:
        th.join(120)
    for r in results:
        sent.extend(r)
    deadline = time.monotonic() + 30
    while sum(map(len, received.values())) < len(sent) and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    for t in threads:
        t.join(10)
    got = [i for ids in received.values() for i in ids]
    assert len(got) == len(sent) == per_sender * senders
    assert sorted(got) == sorted(sent)
    with hive.admin() as a:
        assert all(r["inbox"] == 0 for r in a.call("list")["agents"] if r["name"] in names)


def test_a_writer_in_another_process_wakes_the_receiver(hive: RunningHive) -> None:
    waiting = BackgroundRecv(hive.manager, 120, drain=True)
    open_db(hive.paths.db)
    notify_manager(Killed(agent="alice"), hive.paths.doorbell)
    reply = waiting.reply()
    assert reply["message"]["sender"] == "system"
    assert '"event":"killed"' in reply["message"]["body"]


def test_safety_net_poll_finds_a_write_whose_doorbell_was_lost(env: dict[str, str]) -> None:
    env["HIVE_FALLBACK_POLL"] = "0.5"
    with running_hive(env) as hive:
        spawn(hive, "alice")
        waiting = BackgroundRecv(lambda: hive.agent("alice"), 60)
        open_db(hive.paths.db)
        with write_tx():
            insert_message("system", "alice", "no doorbell")
        assert waiting.reply()["message"]["body"] == "no doorbell"
        assert ring_doorbell(hive.paths.doorbell)


def test_delivered_at_is_set_once(hive: RunningHive) -> None:
    spawn(hive, "alice")
    with hive.admin() as a:
        a.call("send", to="alice", body="x")
    drain(hive, "alice")
    open_db(hive.paths.db)
    rows = list(Message.select().where(Message.recipient == "alice"))
    assert len(rows) == 1 and rows[0].delivered_at is not None


def test_kick_wakes_a_waiting_receiver(hive: RunningHive) -> None:
    spawn(hive, "alice")
    waiting = BackgroundRecv(lambda: hive.agent("alice"), 120)
    with hive.admin() as a:
        kicked = a.call("kick", name="alice")
    assert kicked["woken"] == 1 and kicked["inbox"] == 0
    assert waiting.reply() == {"ok": True, "version": 1, "message": None, "kicked": True}


def test_an_unacknowledged_message_comes_back(hive: RunningHive) -> None:
    spawn(hive, "alice")
    with hive.admin() as a:
        sent = a.call("send", to="alice", body="keep me")["id"]
    with hive.agent("alice") as c:
        assert c.call("recv", wait_seconds=0, ack=True)["message"]["id"] == sent
        assert c.call("recv", wait_seconds=0, ack=True)["message"] is None  # leased, not free
    # the receiver went away without acking: the message is back
    with hive.agent("alice") as c:
        assert c.call("recv", wait_seconds=5, ack=True)["message"]["id"] == sent
        assert c.call("ack", id=sent) == {"ok": True, "version": 1, "acked": True}
        assert c.call("ack", id=sent)["acked"] is False  # idempotent
        with pytest.raises(Refused, match="no message #999999 for alice"):
            c.call("ack", id=999999)
    assert drain(hive, "alice") == []


def test_a_handed_off_lease_comes_back_too(hive: RunningHive) -> None:
    spawn(hive, "alice")
    s = socket.socket(socket.AF_UNIX)
    s.connect(str(hive.paths.agent_socket("alice")))
    s.sendall(encode({"cmd": "recv", "wait_seconds": 30, "ack": True}))
    time.sleep(0.2)
    with hive.admin() as a:
        sent = a.call("send", to="alice", body="handed off")["id"]
    s.settimeout(10)
    got = decode_reply(s.makefile("rb").readline())
    assert got["message"]["id"] == sent
    s.close()  # crashed before acking
    assert [m["id"] for m in drain(hive, "alice")] == [sent]


def test_leases_of_a_dead_coordinator_are_void(env: dict[str, str]) -> None:
    import signal as sig

    with running_hive(env) as hive:
        spawn(hive, "alice")
        with hive.admin() as a:
            sent = a.call("send", to="alice", body="in flight")["id"]
        c = hive.agent("alice")
        assert c.call("recv", wait_seconds=0, ack=True)["message"]["id"] == sent
        hive.stop(sig.SIGKILL)
        c.close()
    with running_hive(env) as hive:
        assert [m["id"] for m in drain(hive, "alice")] == [sent]
