"""systemd integration of a service process: sd_notify, the watchdog, socket activation.

Every function is a no-op outside systemd (no NOTIFY_SOCKET, no WATCHDOG_USEC, no LISTEN_FDS),
so the same code runs in a terminal, in tests and as a unit.
"""

from __future__ import annotations

import os
import socket
import time


def _notifier_socket() -> str | None:
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return None
    return "\0" + addr[1:] if addr.startswith("@") else addr


def notify(state: str) -> bool:
    """Send one sd_notify state string (READY=1, STATUS=..., WATCHDOG=1); False outside systemd."""
    addr = _notifier_socket()
    if addr is None:
        return False
    try:
        import sdnotify

        sdnotify.SystemdNotifier().notify(state)
        return True
    except Exception:
        pass
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.connect(addr)
            s.sendall(state.encode())
        return True
    except OSError:
        return False


def ready(status: str | None = None) -> None:
    notify("READY=1" + (f"\nSTATUS={status}" if status else ""))


def status(text: str) -> None:
    notify(f"STATUS={text}")


def stopping(text: str | None = None) -> None:
    notify("STOPPING=1" + (f"\nSTATUS={text}" if text else ""))


def watchdog_interval() -> float | None:
    """Seconds between WATCHDOG=1 pings (half the configured timeout), None if not watched."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    return value / 2_000_000 if value > 0 else None


def ping_watchdog() -> None:
    notify("WATCHDOG=1")


class Watchdog:
    """WATCHDOG=1 for a loop that calls `ping()` each time it wakes: sent at most once per
    half interval (`interval` is None when the unit has no watchdog)."""

    def __init__(self) -> None:
        self.interval = watchdog_interval()
        self._last = 0.0

    def ping(self) -> None:
        if self.interval is None:
            return
        now = time.monotonic()
        if now - self._last >= self.interval / 2:
            ping_watchdog()
            self._last = now


def listen_fds_by_name() -> dict[str, int]:
    """Sockets systemd passed us, keyed by FileDescriptorName=; {} when not socket-activated."""
    if not os.environ.get("LISTEN_FDS"):
        return {}
    from systemd import daemon

    by_fd = daemon.listen_fds_with_names(unset_environment=True)
    return {str(name): int(fd) for fd, name in by_fd.items()}
