"""Wait for a change in one directory with inotify (through ctypes), not by polling.

Where inotify is unavailable the wait simply lasts its timeout, so callers keep a slow
safety-net check; it never spins.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import select
from pathlib import Path
from types import TracebackType

IN_MODIFY = 0x00000002
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_NONBLOCK = 0o4000
IN_CLOEXEC = 0o2000000
WATCHED = IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        lib = ctypes.CDLL(name or "libc.so.6", use_errno=True)
        lib.inotify_init1.argtypes = [ctypes.c_int]
        lib.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        return lib
    except (OSError, AttributeError):
        return None


class DirWatch:
    """Open on a directory; `wait(timeout)` returns True when something in it changed."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.fd: int | None = None
        lib = _libc()
        if lib is None:
            return
        fd = lib.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            return
        if lib.inotify_add_watch(fd, os.fsencode(directory), WATCHED) < 0:
            os.close(fd)
            return
        self.fd = fd

    def __enter__(self) -> DirWatch:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def wait(self, timeout: float) -> bool:
        """Block until a change (True) or the timeout (False)."""
        if self.fd is None:
            select.select([], [], [], timeout)
            return False
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return False
        try:
            while os.read(self.fd, 65536):
                pass
        except BlockingIOError:
            pass
        return True
