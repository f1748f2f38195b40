"""hive-notify as a running service: the doorbell, the look at the outbox, one sender thread per
channel, retries with backoff, and what it tells systemd and the journal.

It sleeps in poll() on its doorbell (rung by the producers after they commit) and a wake-up
pipe (signals, a finished send); it looks at the outbox then, at the next due time (a burst's
end, a retry, a deadline reminder) and as a slow safety net. A send never runs on the loop:
a slow or dead channel delays only itself. A failing channel is logged once with its cause,
and once more when it works again.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import FrameType

import peewee as pw

from ..hive import doorbell, sd
from ..hive import log as hlog
from ..hive.channels import Channel
from ..hive.client import Unreachable
from ..hive.db import OutboxItem
from ..hive.vocab import Notice
from . import compose, ledger
from .ledger import Due
from .links import ItemClosed, Link, LinkMaker
from .settings import NotifySettings

PRUNE_EVERY = 3600.0


def bind_doorbell(path: Path) -> socket.socket:
    """The datagram socket producers ring (owner only: the coordinator and the crash watcher
    ring it as root); what a previous run left at the path is replaced."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return doorbell.bind(path, mode=0o600)


class NotifyService:
    """One hive-notify: `run()` until SIGTERM/SIGINT, then close what it opened."""

    def __init__(
        self,
        settings: NotifySettings,
        channels: list[Channel],
        links: LinkMaker | None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.channels = channels
        self.usable = [c for c in channels if c.problem is None]
        self.required = [c.key for c in self.usable]
        self.links = links
        self.clock = clock
        self.failing: dict[str, str] = {}  # channel key → the cause logged for its streak
        self.sent = 0
        self._links_down: str | None = None
        self._busy: set[str] = set()
        self._lock = threading.Lock()
        self._stop = False
        self._status = ""
        self._pool = ThreadPoolExecutor(
            max_workers=max(1, len(self.usable)), thread_name_prefix="hive-notify-send"
        )
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._doorbell: socket.socket | None = None
        self._watchdog = sd.Watchdog()
        self._last_prune = 0.0

    # lifetime ------------------------------------------------------------------------------
    def run(self) -> int:
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        old_wakeup = signal.set_wakeup_fd(self._wake_w)
        try:
            self._doorbell = bind_doorbell(self.settings.paths.notify_doorbell)
            for c in self.channels:
                if c.problem is not None:
                    hlog.log(c.problem, kind="notification", priority=hlog.ERR, channel=c.label)
            sd.ready(self.describe())
            hlog.log(f"hive-notify started: {self.describe()}", kind="service_started")
            print(f"hive-notify is running: {self.describe()}", flush=True)
            self._loop()
        finally:
            signal.set_wakeup_fd(old_wakeup)
            for s, handler in previous.items():
                signal.signal(s, handler)
            sd.stopping("hive-notify stopping")
            hlog.log("hive-notify stopping", kind="service_stopping")
            self._pool.shutdown(wait=True, cancel_futures=True)
            if self._doorbell is not None:
                self._doorbell.close()
                with contextlib.suppress(OSError):
                    self.settings.paths.notify_doorbell.unlink()
            os.close(self._wake_r)
            os.close(self._wake_w)
        return 0

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stop = True

    def _loop(self) -> None:
        while not self._stop:
            t = self.clock()
            try:
                wake_at = self.step(t)
            except (pw.OperationalError, pw.DatabaseError) as e:  # e.g. locked: try again soon
                hlog.log(
                    f"could not read the outbox: {e}", kind="notification", priority=hlog.WARNING
                )
                wake_at = t + 1.0
            if t - self._last_prune >= PRUNE_EVERY:
                self._last_prune = t
                with contextlib.suppress(pw.DatabaseError):
                    ledger.prune(t)
            self._set_status(self.describe())
            self._ping()
            timeout = max(0.0, min(wake_at - self.clock(), self.settings.safety_net))
            if self._watchdog.interval is not None:
                timeout = min(timeout, self._watchdog.interval)
            self._wait(timeout)

    def _wait(self, timeout: float) -> None:
        poller = select.poll()
        poller.register(self._wake_r, select.POLLIN)
        if self._doorbell is not None:
            poller.register(self._doorbell.fileno(), select.POLLIN)
        poller.poll(max(0, int(timeout * 1000) + 1))
        with contextlib.suppress(BlockingIOError):
            while os.read(self._wake_r, 64):
                pass
        if self._doorbell is not None:
            doorbell.drain(self._doorbell)

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"!")

    # one look at the outbox ----------------------------------------------------------------
    def step(self, t: float) -> float:
        """Send what is due on each idle channel; when to look again (absolute time)."""
        with self._lock:
            idle = [c for c in self.usable if c.key not in self._busy]
        if self.usable and not idle:  # every channel is sending: its end wakes the loop
            return t + self.settings.safety_net
        settled = ledger.settle(ledger.due_items(t), self.settings.events, self.settings.give_up, t)
        for item in settled.expired:
            hlog.log(
                f"notice #{item.id} ({item.kind}: {item.title}) was not delivered within "
                f"{self.settings.give_up:.0f} s of being due: given up",
                kind="notification",
                agent=item.agent,
                priority=hlog.ERR,
            )
        wakes = [t + self.settings.safety_net]
        upcoming = ledger.next_due(t)
        if upcoming is not None:
            wakes.append(upcoming)
        for channel in idle:
            todo, later = ledger.plan(settled.live, channel.key, t)
            if later is not None:
                wakes.append(later)
            if not todo:
                continue
            fresh = [d.item.due_at for d in todo if d.attempts == 0]
            if fresh:
                ready = min(max(fresh) + self.settings.quiet, min(fresh) + self.settings.gather_max)
                if ready > t:  # a burst may still be arriving: it goes out as one message
                    wakes.append(ready)
                    continue
            with self._lock:
                self._busy.add(channel.key)
            self._pool.submit(self._deliver, channel, todo)
        return min(wakes)

    # one send (on a sender thread) ---------------------------------------------------------
    def _deliver(self, channel: Channel, todo: list[Due]) -> None:
        try:
            self._send(channel, todo)
        except Exception as e:
            hlog.log(
                f"sending to {channel.label} failed unexpectedly: {e!r}",
                kind="internal_error",
                priority=hlog.ERR,
                traceback=traceback.format_exc(),
            )
        finally:
            with self._lock:
                self._busy.discard(channel.key)
            self._wake()

    def _link(self, item: OutboxItem, channel: Channel) -> Link | None:
        if self.links is None or Notice(item.kind).item is None or item.item_id is None:
            return None
        try:
            made = self.links.link(item, channel.key, channel.label)
        except Unreachable as e:
            if self._links_down is None:
                hlog.log(
                    f"notifications go out without action links for now: {e}",
                    kind="notification",
                    priority=hlog.WARNING,
                )
            self._links_down = str(e)
            return None
        if self._links_down is not None:
            self._links_down = None
            hlog.log("action links are made again", kind="notification")
        return made

    def _send(self, channel: Channel, todo: list[Due]) -> None:
        listed: list[Due] = []
        rest: list[Due] = []
        links: dict[int, tuple[str, float]] = {}
        for due in todo:
            if len(listed) >= self.settings.batch_items:
                rest.append(due)  # counted in the message, with the dashboard's address
                continue
            try:
                made = self._link(due.item, channel)
            except ItemClosed as e:
                ledger.moot(int(due.item.id), str(e), self.clock())
                continue
            if made is not None:
                links[int(due.item.id)] = (made.url, made.valid_seconds)
            listed.append(due)
        if not listed and not rest:
            return
        msg = compose.message([d.item for d in listed], len(rest), links, self.settings.public_url)
        sending = listed + rest
        cause = channel.send(msg.title, msg.body, urgent=msg.urgent)
        t = self.clock()
        ids = [int(d.item.id) for d in sending]
        if cause is None:
            done = ledger.record_sent(ids, channel.key, channel.label, self.required, t)
            if self.links is not None:
                self.links.forget(done)
            with self._lock:
                self.sent += len(ids)
                was = self.failing.pop(channel.key, None)
            if was is not None:
                hlog.log(
                    f"notifications to {channel.label} (URL {channel.index}) work again: "
                    f"{len(ids)} waiting notice(s) sent",
                    kind="notification",
                    channel=channel.label,
                )
            return
        attempts = {int(d.item.id): d.attempts for d in sending}
        # the message is retried whole: its notices keep going out together
        when = t + self.settings.backoff(max(attempts.values()) + 1)
        retry = dict.fromkeys(attempts, when)
        ledger.record_failed(attempts, channel.key, channel.label, cause, retry)
        with self._lock:
            first = self.failing.get(channel.key) != cause
            self.failing[channel.key] = cause
        if first:
            wait = min(retry.values()) - t
            hlog.log(
                f"notifications to {channel.label} (URL {channel.index}) failed: {cause}; "
                f"{len(ids)} notice(s) kept, retried with backoff (next in {wait:.3g} s)",
                kind="notification",
                channel=channel.label,
                priority=hlog.WARNING,
            )

    # systemd -------------------------------------------------------------------------------
    def describe(self) -> str:
        if not self.channels:
            return "no HIVE_NOTIFY_URLS set: nothing is sent (notices wait in the outbox)"
        with self._lock:
            failing = dict(self.failing)
            sent = self.sent
        states = ", ".join(
            f"{c.label} {'unusable' if c.problem else 'failing' if c.key in failing else 'ok'}"
            for c in self.channels
        )
        return f"{states}; {sent} sent since start"

    def _set_status(self, text: str) -> None:
        if text != self._status:
            self._status = text
            sd.status(text)

    def _ping(self) -> None:
        self._watchdog.ping()
