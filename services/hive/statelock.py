"""One owner per directory: an exclusive lock held for a process's whole life.

The coordinator takes one on its state dir, `make demo` one on `.demo/`: a second
instance refuses with a sentence naming the one that holds it, instead of running two
coordinators on one database. The kernel drops the lock with the process, so a crash
never leaves a stale one behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import time
from pathlib import Path

LOCK_NAME = ".lock"


class LockError(Exception):
    """The lock cannot be taken; the message says why and what to do."""


class Held(LockError):
    """Another process holds the lock; the message names it and what to do."""


class DirLock:
    def __init__(self, directory: Path, what: str, hint: str) -> None:
        """`what` names the owner ("a coordinator"); `hint` says how to stop the other one."""
        self.path = directory / LOCK_NAME
        self.what = what
        self.hint = hint
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
        try:
            fd = os.open(self.path, flags, 0o644)
        except OSError as e:
            raise LockError(
                f"cannot take the lock {self.path} ({e.strerror}): check that the state dir "
                "exists and is writable (not full, not read-only)"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "a process"
            os.close(fd)
            raise Held(
                f"{self.what} already runs on {self.path.parent} ({holder}): {self.hint}"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        note = f"pid {os.getpid()} on {socket.gethostname()} since {stamp}\n".encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, note, 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> DirLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
