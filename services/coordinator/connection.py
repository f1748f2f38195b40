"""One client connection to a hive socket: framing, one request at a time, replies in order.

The caller's identity is fixed by the socket it came in on and never read from a request.
A bad line gets a refusal and the connection lives on; a peer that goes away cancels
whatever it was waiting for, and a reply that cannot be written is undone.
"""

from __future__ import annotations

import asyncio
import pwd
import select
import socket
import struct
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from services.hive.protocol import MAX_LINE, LineFramer, Oversize, encode

MAX_QUEUED = 64
"""Requests read ahead of the one being served before reading pauses (backpressure)."""


@dataclass(frozen=True)
class Caller:
    """Who is on the other end: `role` is admin, manager or agent; `name` the agent or operator."""

    role: str
    name: str


@dataclass
class Reply:
    """A reply and what to do if it cannot reach the peer (e.g. put a message back)."""

    body: dict[str, Any]
    undo: Callable[[], None] | None = None


Handler = Callable[["Connection", bytes | Oversize], Awaitable[Reply]]


class Connection(asyncio.Protocol):
    def __init__(self, caller: Caller, handle: Handler, on_close: Callable[[Connection], None]):
        self.caller = caller
        self._handle = handle
        self._on_close = on_close
        self._framer = LineFramer(MAX_LINE)
        self._queue: deque[bytes | Oversize] = deque()
        self._worker: asyncio.Task[None] | None = None
        self._paused = False
        self.transport: asyncio.Transport | None = None
        self.peer_eof = False
        self.closed = False
        self.gone = asyncio.Event()
        self.leases: set[int] = set()
        """Messages leased to this connection by `recv {ack: true}`, not yet acknowledged."""
        self.peer_uid: int | None = None
        """The connecting process's uid (SO_PEERCRED), recorded with an operator's decisions."""

    # asyncio.Protocol --------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family == socket.AF_UNIX:
            creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            self.peer_uid = struct.unpack("3i", creds)[1]

    def peer_user(self) -> str:
        """`uid N (name)` of the peer, for the record of who decided."""
        if self.peer_uid is None:
            return "uid unknown"
        try:
            return f"uid {self.peer_uid} ({pwd.getpwuid(self.peer_uid).pw_name})"
        except KeyError:
            return f"uid {self.peer_uid}"

    def data_received(self, data: bytes) -> None:
        self._queue.extend(self._framer.feed(data))
        if len(self._queue) >= MAX_QUEUED and not self._paused and self.transport is not None:
            self.transport.pause_reading()
            self._paused = True
        self._kick_worker()

    def eof_received(self) -> bool:
        # The peer will send nothing more; answer what it sent, then close.
        self.peer_eof = True
        self.gone.set()
        self._kick_worker()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.peer_eof = True
        self.gone.set()
        self._queue.clear()
        if self._worker is not None and not self._worker.done():
            self._worker.cancel()
        self._on_close(self)

    # serving -----------------------------------------------------------------------------
    def _kick_worker(self) -> None:
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._work())

    async def _work(self) -> None:
        while self._queue and not self.closed:
            item = self._queue.popleft()
            if self._paused and len(self._queue) < MAX_QUEUED // 2 and self.transport is not None:
                self.transport.resume_reading()
                self._paused = False
            reply = await self._handle(self, item)
            if not self.write(reply.body) and reply.undo is not None:
                reply.undo()
        if self.peer_eof and not self._queue and self.transport is not None:
            self.transport.close()

    def write(self, body: dict[str, Any]) -> bool:
        """Write one reply line; False if it could not be handed to the peer."""
        t = self.transport
        if self.closed or t is None or t.is_closing():
            return False
        t.write(encode(body))
        return not t.is_closing()

    async def wait_while_connected(self, fut: asyncio.Future[Any], timeout: float) -> None:
        """Wait for `fut` until the timeout or until the peer goes away, whichever is first."""
        gone: asyncio.Task[Any] = asyncio.get_running_loop().create_task(self.gone.wait())
        try:
            waits: set[asyncio.Future[Any]] = {fut, gone}
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()

    def peer_listening(self) -> bool:
        """True while the peer has neither closed nor half-closed its end (safe to deliver)."""
        if self.closed or self.peer_eof or self.transport is None:
            return False
        sock = self.transport.get_extra_info("socket")
        if sock is None:
            return False
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLRDHUP)
        for _fd, events in poller.poll(0):
            if events & (select.POLLRDHUP | select.POLLHUP | select.POLLERR | select.POLLNVAL):
                return False
        return True
