"""Serving: the listening socket (passed by systemd, or bound with retry) and the WSGI server.

A port in use is a loud failure naming it: hive-web never probes for another port.
waitress serves; it sends each chunk as it is written, and every live stream holds one of
its threads, so the thread pool is sized for the stream cap plus pages.
"""

from __future__ import annotations

import errno
import socket
import time
from typing import Any

from ..hive import log as hlog
from ..hive import sd
from . import connections
from .settings import Listen, WebSettings

ACTIVATED_NAME = "web"
"""FileDescriptorName= of hive-web.socket."""

PAGE_THREADS = 8
"""Threads left for pages and posts on top of the live streams."""


class BindError(Exception):
    """The dashboard cannot listen; the message names the address and what to do."""


def activated_socket() -> socket.socket | None:
    """The socket systemd passed (hive-web.socket), or None when not socket-activated."""
    fds = sd.listen_fds_by_name()
    if not fds:
        return None
    fd = fds.get(ACTIVATED_NAME)
    if fd is None and len(fds) == 1:
        fd = next(iter(fds.values()))
    if fd is None:
        raise BindError(
            f"systemd passed sockets named {sorted(fds)}, none named {ACTIVATED_NAME!r}: "
            f"set FileDescriptorName={ACTIVATED_NAME} in hive-web.socket"
        )
    return socket.socket(fileno=fd)


def bind(listen: Listen, retry_seconds: float) -> socket.socket:
    """Listen on `listen` with SO_REUSEADDR, retrying while the port is busy, then fail loudly."""
    try:
        infos = socket.getaddrinfo(
            listen.host, listen.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as e:
        raise BindError(f"cannot resolve {listen.host!r} (HIVE_WEB_LISTEN): {e.strerror}") from None
    family, _, _, _, addr = infos[0]
    deadline = time.monotonic() + retry_seconds
    attempt = 0
    while True:
        attempt += 1
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(addr)
            sock.listen(128)
            return sock
        except OSError as e:
            sock.close()
            if e.errno != errno.EADDRINUSE:
                raise BindError(f"cannot listen on {listen}: {e.strerror}") from None
            if time.monotonic() >= deadline:
                raise BindError(
                    f"port {listen.port} on {listen.host} is already in use "
                    f"(tried for {retry_seconds:g} s): stop whatever holds it "
                    f"(ss -ltnp 'sport = :{listen.port}') or set HIVE_WEB_LISTEN to a free "
                    "address; hive-web does not pick another port"
                ) from None
            if attempt == 1:
                hlog.log(
                    f"port {listen.port} on {listen.host} is busy; retrying for "
                    f"{retry_seconds:g} s",
                    kind="web_request",
                    priority=hlog.WARNING,
                )
            time.sleep(0.2)


def listening_socket(settings: WebSettings) -> socket.socket:
    """The socket to serve: systemd's if it passed one, else our own bind of HIVE_WEB_LISTEN.

    Refuses a non-loopback address without HIVE_WEB_PUBLIC_URL, either way.
    """
    sock = activated_socket()
    if sock is None:
        settings.require_public_url_for(settings.listen.host)
        return bind(settings.listen, settings.bind_retry)
    host = str(sock.getsockname()[0]) if sock.family != socket.AF_UNIX else "localhost"
    settings.require_public_url_for(host)
    return sock


def address(sock: socket.socket) -> str:
    name: Any = sock.getsockname()
    if sock.family == socket.AF_INET6:
        return f"[{name[0]}]:{name[1]}"
    if sock.family == socket.AF_INET:
        return f"{name[0]}:{name[1]}"
    return str(name)


def make_server(app: Any, sock: socket.socket, settings: WebSettings) -> Any:
    """A guarded waitress server on `sock`: a thread per live stream plus `PAGE_THREADS`,
    a deadline on every request, room kept for the operator (see `connections`)."""
    proxy: dict[str, Any] = {}
    if settings.trusted_proxy:
        proxy = {
            "trusted_proxy": settings.trusted_proxy,
            "trusted_proxy_headers": {"x-forwarded-for", "x-forwarded-proto"},
        }
    return connections.create(
        app,
        sock,
        threads=settings.max_streams + PAGE_THREADS,
        connection_limit=settings.max_streams + 64,
        request_timeout=settings.request_timeout,
        ident="hive-web",
        clear_untrusted_proxy_headers=True,
        expose_tracebacks=False,
        channel_timeout=300,
        **proxy,
    )
