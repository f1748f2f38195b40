"""Resource exhaustion as an agent would try it, against a real coordinator process: lines
of 1 MiB piled up behind a waiting `recv`, and more connections than its open-file limit.

Both worked before: the first took the coordinator from 64 to 585 MB, the second made the
whole hive unreachable at LimitNOFILE=1024.
"""

from __future__ import annotations

import contextlib
import json
import resource
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hyperhive.coordinator.limits import Limits
from hyperhive.hive.protocol import MAX_LINE, decode_reply, encode

from tests.hivetest import RunningHive, running_hive, spawn

ATTACK_CONNECTIONS = 8
LINES_EACH = 66
RSS_GROWTH_BOUND = 100 * 1024 * 1024
"""Generous: 8 connections may hold ~10 MiB of requests; before the fix they held 520."""


def rss(pid: int) -> int:
    """Resident memory of a process, in bytes, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


def whole_line() -> bytes:
    """A valid request of exactly MAX_LINE bytes (newline excluded)."""
    head = b'{"cmd":"whoami","pad":"'
    return head + b"a" * (MAX_LINE - len(head) - 2) + b'"}\n'


def flood(path: Path, sent: list[int], stop: threading.Event) -> socket.socket:
    """One attacking connection: a recv that waits, then 1 MiB lines until the coordinator
    stops reading (a send blocked for 3 s). The socket stays open for the caller."""
    s = socket.socket(socket.AF_UNIX)
    s.connect(str(path))
    s.sendall(encode({"cmd": "recv", "wait_seconds": 120}))
    s.settimeout(3)
    line = whole_line()
    total = 0
    try:
        for _ in range(LINES_EACH):
            if stop.is_set():
                break
            view = memoryview(line)
            while view:
                n = s.send(view)
                total += n
                view = view[n:]
    except (TimeoutError, OSError):
        pass  # the coordinator stopped reading: that is the point
    sent.append(total)
    return s


def test_one_mebibyte_lines_behind_a_waiting_recv_do_not_pile_up(hive: RunningHive) -> None:
    spawn(hive, "alice")
    path = hive.paths.agent_socket("alice")
    before = rss(hive.proc.pid)
    sent: list[int] = []
    stop = threading.Event()
    conns: list[socket.socket] = []
    threads = [
        threading.Thread(target=lambda: conns.append(flood(path, sent, stop)))
        for _ in range(ATTACK_CONNECTIONS)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    try:
        assert len(sent) == ATTACK_CONNECTIONS
        during = rss(hive.proc.pid)
        with hive.admin() as a:  # the operator is still served
            assert {r["name"] for r in a.call("list")["agents"]} == {"hm1nd", "alice"}
        with hive.agent("alice") as c:  # one request per connection still gets through
            assert c.call("whoami")["name"] == "alice"
    finally:
        stop.set()
        for s in conns:
            s.close()
    with hive.agent("alice") as c:  # and all of them once the flood is gone
        for _ in range(3):
            assert c.call("whoami")["name"] == "alice"
    after = rss(hive.proc.pid)
    offered = ATTACK_CONNECTIONS * LINES_EACH * (MAX_LINE + 1)
    print(
        f"\nRSS before {before / 2**20:.1f} MiB, under attack {during / 2**20:.1f} MiB, "
        f"after {after / 2**20:.1f} MiB; accepted {sum(sent) / 2**20:.1f} of "
        f"{offered / 2**20:.0f} MiB offered"
    )
    assert during - before < RSS_GROWTH_BOUND, (before, during)
    assert sum(sent) < offered / 4  # the coordinator stopped reading, the kernel buffers filled


def _nofile_1024() -> None:
    """In the coordinator's child before exec: the limit of the original finding."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))


@pytest.fixture
def small_hive(env: dict[str, str]) -> Iterator[RunningHive]:
    with running_hive(env, preexec_fn=_nofile_1024) as hive:
        yield hive


@contextlib.contextmanager
def many_connections(path: Path, count: int) -> Iterator[list[socket.socket]]:
    conns: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_UNIX)
            conns.append(s)
            s.connect(str(path))  # blocking: waits while the listen backlog is full
            s.settimeout(30)
        yield conns
    finally:
        for s in conns:
            s.close()


def answer(s: socket.socket) -> dict[str, object]:
    """Ask whoami on a connection; the reply, or the refusal it was closed with."""
    with contextlib.suppress(OSError):
        s.sendall(encode({"cmd": "whoami"}))
    with s.makefile("rb") as f:
        return decode_reply(f.readline(MAX_LINE + 2))


def test_a_connection_flood_on_one_agent_socket_leaves_the_hive_reachable(
    small_hive: RunningHive,
) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1400:
        try:  # root may raise its own hard limit, unless a container took that right away
            resource.setrlimit(resource.RLIMIT_NOFILE, (1400, 1400))
            hard = 1400
        except (ValueError, PermissionError):
            pytest.skip(
                f"this test opens 1,100 connections; the hard open-file limit is {hard} "
                "and this process may not raise it"
            )
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1400), hard))
    hive = small_hive
    spawn(hive, "alice", "bob")
    cap = Limits.from_nofile(1024).per_socket
    try:
        with many_connections(hive.paths.agent_socket("alice"), 1100) as conns:
            with hive.admin() as a:  # the operator first
                assert len(a.call("list")["agents"]) == 3
            with hive.agent("bob") as b:  # another agent is not starved either
                assert b.call("whoami")["name"] == "bob"
            with hive.manager() as m:
                assert m.call("whoami")["name"] == "hm1nd"
            replies = [answer(s) for s in conns]
        served = [r for r in replies if r["ok"]]
        refused = [str(r["error"]) for r in replies if not r["ok"]]
        assert len(served) == cap and {r["name"] for r in served} == {"alice"}
        assert len(refused) == 1100 - cap
        assert all(f"already holds {cap} connections" in e for e in refused), refused[:3]
        with hive.agent("alice") as c:  # the socket serves again once they are gone
            assert c.call("whoami")["name"] == "alice"
        assert hive.alive()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    log = hive.log()
    assert "connection(s) on the socket of alice" in log
    assert log.count("connection(s) on the socket of alice") < 10  # not one line per refusal
    assert json.loads(json.dumps(replies[-1]))["ok"] is False


def test_a_client_that_never_reads_its_replies_is_served_one_at_a_time(hive: RunningHive) -> None:
    """200 `recv` of 256 KiB messages pipelined, nothing read: 51 MiB of replies would sit
    in the coordinator's write buffer. It serves on only as the client reads."""
    spawn(hive, "alice")
    body = "b" * (256 * 1024)
    count = 200
    with hive.agent("alice") as c:
        ids = [c.call("send", to="alice", body=body)["id"] for _ in range(count)]
    before = rss(hive.proc.pid)
    s = socket.socket(socket.AF_UNIX)
    s.connect(str(hive.paths.agent_socket("alice")))
    try:
        s.sendall(b"".join(encode({"cmd": "recv", "wait_seconds": 0}) for _ in range(count)))
        with hive.admin() as a:  # a round trip: the coordinator has had its go at them
            a.call("list")
        with hive.agent("alice") as other:
            other.call("whoami")
        during = rss(hive.proc.pid)
        s.settimeout(30)
        with s.makefile("rb") as f:  # now read: every reply comes, in order
            got = [decode_reply(f.readline(MAX_LINE + 2))["message"]["id"] for _ in range(count)]
    finally:
        s.close()
    print(f"\nRSS before {before / 2**20:.1f} MiB, while not reading {during / 2**20:.1f} MiB")
    assert got == ids
    assert during - before < 30 * 1024 * 1024, (before, during)
