"""systemd units through pystemd: start, stop, kill and reload, waiting on JobRemoved (no polling).

Each call opens its own system-bus connection (backend calls run in worker threads) and
closes it before returning.
"""

from __future__ import annotations

import contextlib
import select
import signal
import time
from typing import Any

from ..hive.protocol import Refusal
from ..hive.vocab import Code

JOB_TIMEOUT = 120.0


class UnitError(Refusal):
    """A systemd job that failed or could not be queued."""

    code = Code.UNAVAILABLE


def _bus() -> Any:
    from pystemd.dbuslib import DBus

    return DBus()


def _manager(bus: Any) -> Any:
    from pystemd.systemd1 import Manager

    return Manager(bus=bus, _autoload=True)


def _wait_job(bus: Any, done: dict[bytes, bytes], job: bytes, unit: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while job not in done:
        while not bus.process().is_empty():
            pass
        if job in done:
            break
        left = deadline - time.monotonic()
        if left <= 0:
            raise UnitError(f"systemd did not finish the job on {unit} within {timeout:.0f} s")
        select.select([bus.get_fd()], [], [], left)
    return done[job].decode()


def run_job(method: str, unit: str, timeout: float = JOB_TIMEOUT) -> str:
    """Queue StartUnit/StopUnit/RestartUnit on `unit` and wait for its JobRemoved result."""
    from pystemd.dbusexc import DBusBaseError

    with _bus() as bus:
        done: dict[bytes, bytes] = {}

        def on_removed(msg: Any, error: Any = None, userdata: Any = None) -> None:
            msg.process_reply(True)
            _id, path, _unit, result = msg.body
            done[path] = result

        bus.match_signal(
            b"org.freedesktop.systemd1",
            b"/org/freedesktop/systemd1",
            b"org.freedesktop.systemd1.Manager",
            b"JobRemoved",
            on_removed,
        )
        manager = _manager(bus)
        manager.Manager.Subscribe()
        try:
            job = getattr(manager.Manager, method)(unit.encode(), b"replace")
        except DBusBaseError as e:
            raise UnitError(f"systemd refused to {method_verb(method)} {unit}: {e}") from None
        result = _wait_job(bus, done, job, unit, timeout)
    if result != "done":
        raise UnitError(f"{method_verb(method)} {unit} ended '{result}': see journalctl -u {unit}")
    return result


def method_verb(method: str) -> str:
    return {"StartUnit": "start", "StopUnit": "stop", "RestartUnit": "restart"}.get(method, method)


def start(unit: str) -> None:
    reset_failed(unit)
    run_job("StartUnit", unit)


def stop(unit: str) -> None:
    run_job("StopUnit", unit)
    reset_failed(unit)


def kill(unit: str) -> None:
    """SIGKILL every process of the unit, then wait for it to be stopped."""
    from pystemd.dbusexc import DBusBaseError

    with _bus() as bus, contextlib.suppress(DBusBaseError):  # not running: nothing to kill
        _manager(bus).Manager.KillUnit(unit.encode(), b"all", signal.SIGKILL)
    stop(unit)


def reset_failed(unit: str) -> None:
    from pystemd.dbusexc import DBusBaseError

    with _bus() as bus, contextlib.suppress(DBusBaseError):  # not failed: nothing to reset
        _manager(bus).Manager.ResetFailedUnit(unit.encode())


def active_state(unit: str) -> str:
    from pystemd.systemd1 import Unit

    with _bus() as bus:
        u = Unit(unit.encode(), bus=bus, _autoload=True)
        return str(u.Unit.ActiveState.decode())


def daemon_reload() -> None:
    """Reload unit files; returns once systemd has finished the reload."""
    with _bus() as bus:
        _manager(bus).Manager.Reload()
