"""Doorbells: the datagram sockets a process rings after it commits to SQLite, so the one
that reads those rows wakes at once instead of polling (each keeps a slow safety net for a
ring that was lost). This module binds one and empties it; `inbox.ring_doorbell` rings.
"""

from __future__ import annotations

import contextlib
import grp
import os
import socket
from pathlib import Path


def bind(path: Path, *, mode: int, group: str | None = None) -> socket.socket:
    """A non-blocking datagram socket at `path` with `mode` from its first moment (and
    `group`, where that group exists and this process may give it); whatever a previous
    run left at the path is replaced."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    old = os.umask(0o777 & ~mode)
    try:
        sock.bind(str(path))
    finally:
        os.umask(old)
    os.chmod(path, mode)
    if group is not None:
        with contextlib.suppress(KeyError, PermissionError):
            os.chown(path, -1, grp.getgrnam(group).gr_gid)
    sock.setblocking(False)
    return sock


def drain(sock: socket.socket) -> None:
    """Read every ring waiting on `sock` (many rings, one wake-up)."""
    while True:
        try:
            sock.recv(64)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return
