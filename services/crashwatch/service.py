"""The crash watcher's process: the bus connection's lifetime, the main loop, sd_notify.

Sleeps in poll() on the bus fd (and a signal wake-up pipe); wakes for signals, the
watchdog and a slow safety-net reconcile. Reconnects with backoff when the bus drops.
"""

from __future__ import annotations

import os
import select
import signal
import time
import traceback
from collections import deque
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from ..hive import log as hlog
from ..hive import sd
from . import journal
from .machined import NEW, REMOVED, BusDown, MachinedBus
from .units import UnitStatus, read_unit
from .watcher import CrashWatcher

RECONCILE_EVERY = 30.0
"""Safety net: compare the view with machined's list and look for crashes nobody saw this
often (seconds)."""

BACKOFF_FIRST = 0.1
BACKOFF_MAX = 5.0


class SystemHost:
    """The watcher's `Host` on a real system: machined, systemd and the journal."""

    def __init__(self, bus: MachinedBus) -> None:
        self.bus = bus

    def machines(self) -> set[str]:
        return {m.name for m in self.bus.list_machines()}

    def unit_status(self, unit: str) -> UnitStatus:
        from pystemd.dbusexc import DBusBaseError

        try:
            return read_unit(unit, self.bus.bus)
        except DBusBaseError as e:
            self.bus.fileno()  # BusDown if that was the connection dropping
            hlog.log(f"could not read {unit}: {e}", priority=hlog.WARNING)
        except BusDown:
            raise
        except Exception as e:
            hlog.log(f"could not read {unit}: {e!r}", priority=hlog.WARNING)
        return UnitStatus(unit=unit)

    def journal_tail(self, unit: str, invocation_id: str) -> list[str]:
        return journal.last_lines(unit, invocation_id)


class CrashWatchService:
    """One watcher process: `run()` until SIGTERM/SIGINT, then close what it opened."""

    def __init__(
        self,
        doorbell: Path | None,
        *,
        reconcile_every: float = RECONCILE_EVERY,
        notify_doorbell: Path | None = None,
    ) -> None:
        self.events: deque[tuple[str, str]] = deque()
        self.bus = MachinedBus(lambda member, name: self.events.append((member, name)))
        self.watcher = CrashWatcher(SystemHost(self.bus), doorbell, notify_doorbell=notify_doorbell)
        self.reconcile_every = reconcile_every
        self._stop = False
        self._ready = False
        self._status = ""
        self._watchdog = sd.Watchdog()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    # lifetime ------------------------------------------------------------------------------
    def run(self) -> int:
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        old_wakeup = signal.set_wakeup_fd(self._wake_w)
        try:
            self._run()
        finally:
            signal.set_wakeup_fd(old_wakeup)
            for s, handler in previous.items():
                signal.signal(s, handler)
            self.bus.close()
            os.close(self._wake_r)
            os.close(self._wake_w)
        sd.stopping("stopping")
        hlog.log("crash watcher stopping", kind="service_stopping")
        return 0

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stop = True

    def _run(self) -> None:
        delay = BACKOFF_FIRST
        attempt = 0
        while not self._stop:
            try:
                self._connect()
            except BusDown as e:
                attempt += 1
                self._set_status(f"waiting for the system bus (attempt {attempt}): {e}")
                if attempt == 1:
                    hlog.log(str(e), priority=hlog.WARNING)
                self._idle(delay)
                delay = min(delay * 2, BACKOFF_MAX)
                continue
            if self._ready:
                hlog.log(f"subscribed to machined again: {self._describe()}")
            delay, attempt = BACKOFF_FIRST, 0
            if not self._ready:
                self._ready = True
                sd.ready(self._describe())
                hlog.log(f"crash watcher started: {self._describe()}", kind="service_started")
            try:
                self._serve()
            except BusDown as e:
                hlog.log(f"{e}; resubscribing", priority=hlog.WARNING)
                self.bus.close()
                self._set_status("system bus lost; resubscribing")

    def _connect(self) -> None:
        """Subscribe, then bring the view up to date (signals first, so none is missed)."""
        self.bus.open()
        self._drain()  # events of the previous connection, in order
        machines = self.watcher.host.machines()
        self._guarded("reconcile with machined's list", self.watcher.reconcile, machines)
        self._guarded("look for crashes nobody saw", self.watcher.catch_up, machines)
        self._set_status(self._describe())

    def _guarded(self, what: str, fn: Callable[[set[str]], object], machines: set[str]) -> None:
        """Run one step; a bus failure propagates, anything else is logged (retried later)."""
        try:
            fn(machines)
        except BusDown:
            raise
        except Exception as e:
            hlog.log(
                f"could not {what}: {e!r}",
                kind="internal_error",
                priority=hlog.ERR,
                traceback=traceback.format_exc(),
            )

    # the loop ------------------------------------------------------------------------------
    def _serve(self) -> None:
        next_reconcile = time.monotonic() + self.reconcile_every
        while not self._stop:
            self.bus.dispatch()
            if self.events:
                self._drain()
                continue  # the handling made bus calls: dispatch what they queued
            now = time.monotonic()
            if now >= next_reconcile:
                machines = self.watcher.host.machines()
                self._guarded("reconcile with machined's list", self.watcher.reconcile, machines)
                self._guarded("look for crashes nobody saw", self.watcher.catch_up, machines)
                self._set_status(self._describe())
                next_reconcile = now + self.reconcile_every
                continue
            self._ping()
            timeout = next_reconcile - now
            if self._watchdog.interval is not None:
                timeout = min(timeout, self._watchdog.interval)
            self._wait(self.bus.fileno(), timeout)

    def _drain(self) -> None:
        while self.events and not self._stop:
            member, name = self.events.popleft()
            try:
                if member == NEW:
                    self.watcher.machine_new(name)
                elif member == REMOVED:
                    self.watcher.machine_removed(name)
            except BusDown:
                raise
            except Exception as e:  # the machine stays in the view; the reconcile retries
                hlog.log(
                    f"could not judge {member} {name}: {e!r}",
                    kind="internal_error",
                    priority=hlog.ERR,
                    traceback=traceback.format_exc(),
                )
            self._ping()
        self._set_status(self._describe())

    def _wait(self, fd: int | None, timeout: float) -> None:
        poller = select.poll()
        poller.register(self._wake_r, select.POLLIN)
        if fd is not None:
            poller.register(fd, select.POLLIN)
        poller.poll(max(0, int(timeout * 1000)))
        try:
            while os.read(self._wake_r, 64):
                pass
        except BlockingIOError:
            pass

    def _idle(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not self._stop and (left := end - time.monotonic()) > 0:
            self._ping()
            self._wait(None, min(left, self._watchdog.interval or left))

    # systemd -------------------------------------------------------------------------------
    def _ping(self) -> None:
        self._watchdog.ping()

    def _describe(self) -> str:
        up = self.watcher.watching()
        shown = ", ".join(up) if up else "none up"
        text = f"watching machined for hive containers ({len(up)}: {shown})"
        n = self.watcher.crashes
        if n:
            text += f"; {n} crash{'es' if n > 1 else ''} reported"
        return text

    def _set_status(self, text: str) -> None:
        if text != self._status:
            self._status = text
            sd.status(text)
