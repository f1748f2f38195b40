"""Which connections the dashboard keeps: a deadline for each request, and room for the operator.

waitress holds every connection until its request is complete and stops accepting at its
connection limit, so a few hundred slow or silent connections (anyone on the host can
open them) would shut the operator out. Here a connection gets `request_timeout` seconds
to send a whole request, and when the server is full a new connection is taken in by
closing the oldest one that never carried a signed-in request; a connection that did is
"trusted" (see `trust`) and only closed after `trusted_idle` seconds of silence.
"""

from __future__ import annotations

import socket
import time
from typing import Any

from waitress.adjustments import Adjustments  # type: ignore[import-untyped]
from waitress.channel import HTTPChannel  # type: ignore[import-untyped]
from waitress.server import TcpWSGIServer, UnixWSGIServer  # type: ignore[import-untyped]
from waitress.task import ThreadedTaskDispatcher  # type: ignore[import-untyped]

REQUEST_TIMEOUT = 10.0
TRUSTED_IDLE = 120.0
CLEANUP_INTERVAL = 1
"""Seconds between two sweeps of the deadlines (waitress's own maintenance timer)."""


class GuardedChannel(HTTPChannel):  # type: ignore[misc]
    trusted = False
    """Carried a request with a live operator session: never evicted to make room."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.waiting_since: float | None = self.creation_time

    def service(self) -> None:
        try:
            super().service()
        finally:
            self.waiting_since = time.time()  # the next request's deadline starts now


class _Guard:
    """Mixed into waitress's servers: deadlines in `maintenance`, room made on accept."""

    active_channels: dict[int, GuardedChannel]
    adj: Any
    accepting: bool
    next_channel_cleanup: float
    request_timeout = REQUEST_TIMEOUT
    trusted_idle = TRUSTED_IDLE
    evicted = 0

    def maintenance(self, now: float) -> None:
        super().maintenance(now)  # type: ignore[misc]
        for channel in list(self.active_channels.values()):
            if channel.requests:
                channel.waiting_since = None
                continue
            if channel.waiting_since is None:
                channel.waiting_since = now
                continue
            limit = self.trusted_idle if channel.trusted else self.request_timeout
            if now - channel.waiting_since > limit:
                channel.will_close = True

    def readable(self) -> bool:
        # Never stop accepting at the limit (waitress does): `handle_accept` makes room.
        now = time.time()
        if now >= self.next_channel_cleanup:
            self.next_channel_cleanup = now + self.adj.cleanup_interval
            self.maintenance(now)
        return self.accepting

    def handle_accept(self) -> None:
        before = set(self.active_channels)
        super().handle_accept()  # type: ignore[misc]
        over = len(self.active_channels) - self.adj.connection_limit
        if over <= 0:
            return
        new = [c for fd, c in self.active_channels.items() if fd not in before]
        idle = sorted(
            (
                c
                for c in self.active_channels.values()
                if not c.trusted and not c.requests and not c.will_close and c not in new
            ),
            key=lambda c: c.creation_time,
        )
        for channel in idle[:over]:
            channel.will_close = True
            self.evicted += 1
        if len(idle) < over:  # nothing left to give way: the newcomer waits no turn
            for channel in new:
                channel.will_close = True


class GuardedTcpServer(_Guard, TcpWSGIServer):  # type: ignore[misc]
    channel_class = GuardedChannel


class GuardedUnixServer(_Guard, UnixWSGIServer):  # type: ignore[misc]
    channel_class = GuardedChannel


def trust(environ: dict[str, Any]) -> None:
    """Mark the connection that carried this request as the operator's (a live session)."""
    check = environ.get("waitress.client_disconnected")
    channel = getattr(check, "__self__", None)
    if isinstance(channel, GuardedChannel):
        channel.trusted = True


def create(
    app: Any,
    sock: socket.socket,
    *,
    threads: int,
    connection_limit: int,
    request_timeout: float = REQUEST_TIMEOUT,
    **adjust: Any,
) -> _Guard:
    """A guarded waitress server on an already listening `sock`."""
    adj = Adjustments(
        sockets=[sock],
        threads=threads,
        connection_limit=connection_limit,
        cleanup_interval=CLEANUP_INTERVAL,
        **adjust,
    )
    dispatcher = ThreadedTaskDispatcher()
    dispatcher.set_thread_count(threads)
    cls = GuardedUnixServer if sock.family == socket.AF_UNIX else GuardedTcpServer
    server: _Guard = cls(
        app,
        map={},
        _sock=sock,
        dispatcher=dispatcher,
        adj=adj,
        bind_socket=False,
        sockinfo=(sock.family, sock.type, sock.proto, sock.getsockname()),
    )
    server.request_timeout = request_timeout
    return server
