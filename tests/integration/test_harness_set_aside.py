"""The real harness facing a reply it cannot read, as a coordinator before the byte limits
sent it: it sets the message aside instead of claiming it again for ever, and goes on.

A proxy stands between the harness and the real coordinator's agent socket and passes
everything through, except that the `recv` reply carrying the marked message is replaced
by what the old coordinator wrote for a 262,144 × é body: one 1.57 MB line of \\u escapes.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakeapi import FakeAnthropic, text
from tests.fakeapi.harness import (
    HarnessProcess,
    admin,
    fake_api,  # noqa: F401 - the pytest fixture `fake`,
    operator_says,
)
from tests.hivetest import RunningHive, spawn

MARK = "please read this poisoned message"


def old_reply(line: bytes) -> bytes:
    """The reply an old coordinator sent for a 512 KB body: ASCII escapes, 1.57 MB."""
    reply = json.loads(line)
    reply["message"]["body"] = "é" * 262_144
    return json.dumps(reply, separators=(",", ":"), ensure_ascii=True).encode() + b"\n"


class OldCoordinatorProxy:
    """Listens at `path`, forwards every connection to `upstream`; rewrites one reply."""

    def __init__(self, upstream: Path) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="hh-proxy-", dir="/tmp"))
        self.path = self.dir / "hive.sock"
        self.upstream = upstream
        self.rewritten = 0
        self._server = socket.socket(socket.AF_UNIX)
        self._server.bind(str(self.path))
        self._server.listen(16)
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return  # closed
            hive = socket.socket(socket.AF_UNIX)
            hive.connect(str(self.upstream))
            with self._lock:
                self._open += [client, hive]
            threading.Thread(target=self._requests, args=(client, hive), daemon=True).start()
            threading.Thread(target=self._replies, args=(hive, client), daemon=True).start()

    @staticmethod
    def _requests(client: socket.socket, hive: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := client.recv(65536):
                hive.sendall(data)
        with contextlib.suppress(OSError):
            hive.shutdown(socket.SHUT_WR)

    def _replies(self, hive: socket.socket, client: socket.socket) -> None:
        with contextlib.suppress(OSError), hive.makefile("rb") as lines:
            for line in lines:
                if MARK.encode() in line and b'"message":{' in line:
                    line = old_reply(line)
                    self.rewritten += 1
                client.sendall(line)
        with contextlib.suppress(OSError):
            client.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._server.close()
        with self._lock:
            for s in self._open:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def proxy(hive: RunningHive) -> Iterator[OldCoordinatorProxy]:
    spawn(hive, "alice")
    p = OldCoordinatorProxy(hive.paths.socket_of("alice"))
    yield p
    p.close()


def test_an_unreadable_reply_is_set_aside_and_the_next_message_runs(
    hive: RunningHive, fake: FakeAnthropic, proxy: OldCoordinatorProxy
) -> None:
    fake.script(text("read the next one"))
    env = {"HIVE_SOCKET": str(proxy.path)}
    with HarnessProcess(hive, "alice", env=env) as h:
        operator_says(hive, "alice", MARK)
        line = h.wait_log("set aside")
        operator_says(hive, "alice", "and this one is fine")
        h.wait_log("turn ended")
        assert h.alive
    assert proxy.rewritten == 1  # it was read once, not claimed again and again
    (request,) = fake.wait_requests(1)
    assert "and this one is fine" in request.text() and MARK not in request.text()
    listed = admin(hive, "inbox", name="alice")
    (aside,) = listed["messages"]
    assert aside["status"] == "set_aside" and aside["preview"] == MARK
    assert f"#{aside['id']} set aside" in line
    assert "recv reply could not be read" in aside["reason"]
    assert "longer than the 1048576-byte line limit" in aside["reason"]
    assert admin(hive, "agent_status", name="alice")["agents"][0]["inbox"] == 0
    assert f"message #{aside['id']} to alice set aside" in hive.log()
    assert os.path.exists(h.state / "conversation.json")
