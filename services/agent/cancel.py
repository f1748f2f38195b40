"""Cancelling a turn: the token every blocking step registers with, and the watcher thread.

The watcher holds its own connection and asks the hive `await_cancel` in a loop; when
the operator cancels, the token runs every registered abort (close the stream, kill the
tool's process group, interrupt a recv) so the turn stops within a second.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ..hive.client import HiveClient, Refused, Unreachable
from ..hive.log import WARNING, log
from .bus import Bus, BusDown, interrupt

WATCH_WAIT = 60
"""Seconds per `await_cancel` request; the watcher asks again until the turn ends."""


class Cancelled(Exception):
    """The operator cancelled the turn."""


class CancelToken:
    def __init__(self) -> None:
        self.event = threading.Event()
        self._lock = threading.Lock()
        self._aborts: list[Callable[[], None]] = []

    @property
    def cancelled(self) -> bool:
        return self.event.is_set()

    def cancel(self) -> None:
        with self._lock:
            if self.event.is_set():
                return
            self.event.set()
            aborts = list(self._aborts)
        for abort in aborts:
            try:
                abort()
            except Exception as e:  # an abort must not stop the others
                log(f"abort step failed: {e!r}", kind="turn", priority=WARNING)

    def check(self) -> None:
        if self.event.is_set():
            raise Cancelled()

    def sleep(self, seconds: float) -> None:
        """Sleep, or raise `Cancelled` the moment the turn is cancelled."""
        if self.event.wait(seconds):
            raise Cancelled()

    @contextmanager
    def on_cancel(self, abort: Callable[[], None]) -> Iterator[None]:
        """Run `abort` if the turn is cancelled while the block runs (or already was)."""
        with self._lock:
            self._aborts.append(abort)
            already = self.event.is_set()
        try:
            if already:
                abort()
            yield
        finally:
            with self._lock:
                self._aborts.remove(abort)


class CancelWatcher:
    """A thread that turns the operator's `cancel_turn` into `token.cancel()`."""

    def __init__(self, bus: Bus, token: CancelToken, since: float) -> None:
        self.bus = bus
        self.token = token
        self.since = since
        self._done = threading.Event()
        self._client: HiveClient | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="cancel-watcher", daemon=True)

    def __enter__(self) -> CancelWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._done.set()
        with self._lock:
            if self._client is not None:
                interrupt(self._client)
        self._thread.join(5)

    def _run(self) -> None:
        failures = 0
        while not self._done.is_set():
            try:
                client = self.bus.open(timeout=30.0)
            except BusDown:
                failures += 1
                if self._done.wait(min(5.0, 0.2 * 2**failures)):
                    return
                continue
            with self._lock:
                self._client = client
            try:
                while not self._done.is_set():
                    reply = client.call("await_cancel", wait_seconds=WATCH_WAIT, since=self.since)
                    if reply.get("cancel") is True:
                        if not self._done.is_set():
                            self.token.cancel()
                        return
            except Refused as e:
                log(
                    f"cancel is not available from this hive ({e}); turns run uncancellable",
                    kind="turn",
                    agent=self.bus.agent,
                    priority=WARNING,
                )
                return
            except (Unreachable, OSError, ValueError):
                failures += 1
                if self._done.wait(min(5.0, 0.2 * 2**failures)):
                    return
            finally:
                with self._lock:
                    self._client = None
                client.close()
