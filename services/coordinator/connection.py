"""One client connection to a hive socket: framing, one request at a time, replies in order.

The caller's identity is fixed by the socket it came in on and never read from a request.
A bad line gets a refusal and the connection lives on; a peer that goes away cancels
whatever it was waiting for, and a reply that cannot be written is undone. What one
connection may hold in memory is bounded: reading pauses while `MAX_BUFFERED` bytes wait,
serving pauses while the peer does not read its replies, and no reply passes `MAX_LINE`.
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

from ..hive.protocol import MAX_LINE, LineFramer, Oversize, encode_reply

MAX_QUEUED = 64
"""Requests read ahead of the one being served before reading pauses (backpressure)."""

MAX_BUFFERED = MAX_LINE + 256 * 1024
"""Bytes of requests one connection may hold (queued lines plus the partial line in the
framer) before reading pauses: one whole line of the largest size, plus one read."""

SOCKET_BUDGET = 4 * MAX_BUFFERED
"""Bytes of requests all connections of one agent (or manager) socket may hold together:
opening more connections does not buy an agent more of the coordinator's memory."""


class Budget:
    """Request bytes the connections of one socket hold together, and who waits for room."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.waiting: set[Connection] = set()

    @property
    def full(self) -> bool:
        return self.used >= self.limit

    def adjust(self, delta: int) -> None:
        self.used += delta
        if delta < 0 and not self.full:
            for conn in list(self.waiting):
                conn.maybe_resume()


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
    cmd: str = "?"


Handler = Callable[["Connection", bytes | Oversize], Awaitable[Reply]]


class Connection(asyncio.Protocol):
    def __init__(
        self,
        caller: Caller,
        handle: Handler,
        on_close: Callable[[Connection], None],
        budget: Budget | None = None,
    ):
        self.caller = caller
        self._handle = handle
        self._on_close = on_close
        self._budget = budget
        self._framer = LineFramer(MAX_LINE)
        self._queue: deque[bytes | Oversize] = deque()
        self._queued_bytes = 0
        self._accounted = 0  # what this connection counts in its socket's budget
        self._worker: asyncio.Task[None] | None = None
        self._paused = False
        self._writable = asyncio.Event()
        self._writable.set()
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
        for item in self._framer.feed(data):
            self._queue.append(item)
            self._queued_bytes += _size(item)
        self._account()
        over_budget = self._budget is not None and self._budget.full
        if self.buffered() >= MAX_BUFFERED or len(self._queue) >= MAX_QUEUED or over_budget:
            self._pause()
        self._kick_worker()

    def buffered(self) -> int:
        """Bytes of requests held: queued lines and the partial line in the framer."""
        return self._queued_bytes + self._framer.buffered

    def _account(self) -> None:
        """Tell the socket's budget how much this connection holds now."""
        now_held = 0 if self.closed else self.buffered()
        delta, self._accounted = now_held - self._accounted, now_held
        if self._budget is not None and delta:
            self._budget.adjust(delta)

    def _pause(self) -> None:
        if not self._paused and self.transport is not None and not self.closed:
            self.transport.pause_reading()
            self._paused = True
            if self._budget is not None:
                self._budget.waiting.add(self)

    def maybe_resume(self) -> None:
        """Read again once this connection and its socket's budget have room."""
        if not self._paused or self.transport is None or self.closed:
            return
        # With nothing queued, a partial line in the framer (never over MAX_LINE) must be
        # allowed to complete, unless the socket's other connections hold the budget.
        roomy = len(self._queue) < MAX_QUEUED // 2 and self.buffered() < MAX_BUFFERED // 2
        if (not self._queue or roomy) and not (self._budget is not None and self._budget.full):
            self.transport.resume_reading()
            self._paused = False
            if self._budget is not None:
                self._budget.waiting.discard(self)

    def pause_writing(self) -> None:
        # The peer is not reading its replies: serve nothing more until it does.
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

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
        self._writable.set()
        self._queue.clear()
        self._queued_bytes = 0
        self._account()
        if self._budget is not None:
            self._budget.waiting.discard(self)
        if self._worker is not None and not self._worker.done():
            self._worker.cancel()
        self._on_close(self)

    # serving -----------------------------------------------------------------------------
    def _kick_worker(self) -> None:
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._work())

    async def _work(self) -> None:
        while self._queue and not self.closed:
            await self._writable.wait()
            if self.closed:
                break
            item = self._queue.popleft()
            self._queued_bytes -= _size(item)
            self._account()
            self.maybe_resume()
            reply = await self._handle(self, item)
            del item
            if not self.write(reply.body, reply.cmd) and reply.undo is not None:
                reply.undo()
        if self.peer_eof and not self._queue and self.transport is not None:
            self.transport.close()

    def write(self, body: dict[str, Any], cmd: str = "?") -> bool:
        """Write one reply line; False if it could not be handed to the peer as it is.

        A reply over `MAX_LINE` is never written: the peer gets a refusal naming its size.
        """
        t = self.transport
        if self.closed or t is None or t.is_closing():
            return False
        line, whole = encode_reply(body, cmd)
        t.write(line)
        return whole and not t.is_closing()

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


def _size(item: bytes | Oversize) -> int:
    return len(item) if isinstance(item, bytes) else 0
