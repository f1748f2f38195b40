"""Live updates: ONE admin-socket `watch` loop, its changes rendered once and fanned out as SSE.

The loop never polls SQLite: it blocks in `watch` until the coordinator reports a change,
re-renders only the sections that change touches (for topics someone is watching), and
queues the changed rows to each subscriber. A slow subscriber is dropped, never waited for.
"""

from __future__ import annotations

import contextlib
import json
import queue
import socket
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from ..hive import log as hlog
from ..hive.client import HiveClient, Refused, Unreachable
from ..hive.wire import AgentRow, agent_rows
from . import pages, views
from .admin import Admin

WATCH_WAIT = 60.0
"""Seconds one `watch` call may block (the coordinator allows up to 180)."""

MIN_PUSH_GAP = 0.03
"""Seconds between two renders: a burst of changes becomes one push."""

QUEUE_FRAMES = 64
HEARTBEAT = 15.0
ALL_KINDS = frozenset(
    {"agents", "approvals", "questions", "messages", "notifications", "turns", "sessions"}
)


def sse(event: str, data: str, event_id: str | None = None) -> str:
    """One server-sent-events frame."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    body = "".join(f"data: {line}\n" for line in data.split("\n"))
    return f"{head}event: {event}\n{body}\n"


class StreamSlots:
    """Each open stream holds a server thread: cap them overall and per session, so pages
    keep being served and one session (or a stolen tab) cannot take every stream."""

    def __init__(self, limit: int, per_session: int | None = None) -> None:
        self.limit = limit
        self.per_session = per_session or limit
        self._open = 0
        self._by_session: dict[int, int] = {}
        self._lock = threading.Lock()

    def acquire(self, session: int) -> str | None:
        """None when a slot was taken for `session`, else why not (one sentence)."""
        with self._lock:
            mine = self._by_session.get(session, 0)
            if mine >= self.per_session:
                return (
                    f"this session has {mine} live streams open already (the limit): "
                    "close some dashboard tabs"
                )
            if self._open >= self.limit:
                return "too many live streams are open: close some dashboard tabs"
            self._open += 1
            self._by_session[session] = mine + 1
            return None

    def release(self, session: int) -> None:
        with self._lock:
            mine = self._by_session.get(session, 0)
            if mine <= 0:
                return
            self._open -= 1
            if mine == 1:
                del self._by_session[session]
            else:
                self._by_session[session] = mine - 1

    @property
    def open(self) -> int:
        return self._open


class Subscriber:
    """One browser tab's stream: frames queued by the hub, read by its server thread."""

    def __init__(self, topic: str, alive: Callable[[], bool] | None = None) -> None:
        self.topic = topic
        self.alive = alive
        """Whether the session behind the stream is still live; checked when sessions end."""
        self._queue: queue.Queue[str | None] = queue.Queue(QUEUE_FRAMES)
        self.closed = False

    def put(self, frame: str | None) -> bool:
        try:
            self._queue.put_nowait(frame)
            return True
        except queue.Full:
            self.closed = True
            with contextlib.suppress(queue.Full):
                self._queue.get_nowait()
                self._queue.put_nowait(None)
            return False

    def get(self, timeout: float = HEARTBEAT) -> str | None:
        """The next frame, "" when nothing came within `timeout`, None when the stream ends."""
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None if self.closed else ""


class AgentRows:
    """The admin `list` rows, fetched once per change rather than once per page.

    While one thread fetches new rows (the hub, after a change: about 0.1 s with 1,000
    agents), a page asks for `latest()` and gets the rows from before that change at once
    instead of queueing behind the fetch; the change's patch follows on its live stream."""

    def __init__(self, admin: Admin) -> None:
        self.admin = admin
        self._rows: list[AgentRow] | None = None
        self._last: list[AgentRow] | None = None
        self._fetch = threading.Lock()
        self._guard = threading.Lock()

    def invalidate(self) -> None:
        with self._guard:
            self._rows = None

    def get(self) -> list[AgentRow]:
        """Current rows; raises `Unreachable` when the coordinator does not answer."""
        with self._fetch:
            with self._guard:
                if self._rows is not None:
                    return self._rows
            rows = agent_rows(self.admin.call("list"))
            with self._guard:
                self._rows = self._last = rows
            return rows

    def latest(self) -> list[AgentRow]:
        """The current rows, or, while another thread is fetching them, the last ones."""
        with self._guard:
            if self._rows is not None:
                return self._rows
            last = self._last
        if last is not None and self._fetch.locked():
            return last
        return self.get()


class _Topic:
    def __init__(self) -> None:
        self.sections: dict[str, pages.Section] = {}
        self.counts: dict[str, int] = {}
        self.subscribers: set[Subscriber] = set()

    def diff(self, new: dict[str, pages.Section]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, section in new.items():
            old = self.sections.get(name)
            if isinstance(section, pages.Keyed):
                before = old.html if isinstance(old, pages.Keyed) else {}
                changed = {k: h for k, h in section.html.items() if before.get(k) != h}
                if changed or not isinstance(old, pages.Keyed) or old.order != section.order:
                    out[name] = {"order": section.order, "html": changed}
            elif section != old:
                out[name] = {"html": section}
            self.sections[name] = section
        return out

    def snapshot(self) -> dict[str, Any]:
        return {
            name: {"order": s.order, "html": s.html} if isinstance(s, pages.Keyed) else {"html": s}
            for name, s in self.sections.items()
        }


class Hub:
    def __init__(self, admin: Admin, renderer: pages.Renderer, slots: StreamSlots) -> None:
        self.admin = admin
        self.renderer = renderer
        self.slots = slots
        self.rows = AgentRows(admin)
        self._topics: dict[str, _Topic] = {}
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._client: HiveClient | None = None
        self._thread: threading.Thread | None = None
        self._note_max = 0
        self.status: dict[str, Any] = {"live": False, "error": "connecting to the coordinator"}
        self.version = -1

    # subscribers -------------------------------------------------------------------------
    def subscribe(self, topic: str, alive: Callable[[], bool] | None = None) -> Subscriber:
        """A stream for `topic`; its first frame is the whole current state. It ends when
        sessions end and `alive` says its own did."""
        with self._lock:
            state = self._topics.get(topic)
            if state is None:
                state = _Topic()
                state.diff(self._render(topic, list(pages.sections_of(topic))))
                state.counts = views.counts()
                self._topics[topic] = state
            sub = Subscriber(topic, alive)
            state.subscribers.add(sub)
            first = {"sections": state.snapshot(), "counts": state.counts, "status": self.status}
            sub.put(sse("patch", json.dumps(first)))
            return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        with self._lock:
            state = self._topics.get(sub.topic)
            if state is None:
                return
            state.subscribers.discard(sub)
            if not state.subscribers:
                del self._topics[sub.topic]

    def subscribers(self) -> int:
        with self._lock:
            return sum(len(t.subscribers) for t in self._topics.values())

    # rendering ---------------------------------------------------------------------------
    def agent_rows(self, *, page: bool = False) -> list[AgentRow]:
        """`list` rows, or none while the coordinator is unreachable; for a `page`, the last
        rows while new ones are being fetched (`AgentRows.latest`).

        The cached rows are trusted only while the watch loop is live (it invalidates them).
        """
        if not self.status.get("live"):
            self.rows.invalidate()
            page = False  # nothing vouches for the last rows either
        try:
            return self.rows.latest() if page else self.rows.get()
        except (Unreachable, Refused):
            return []

    def _render(self, topic: str, names: list[str]) -> dict[str, pages.Section]:
        needs_rows = any(n in pages.ROW_SECTIONS for n in names)
        rows = self.agent_rows() if needs_rows else []
        return self.renderer.sections(topic, names, rows)

    def refresh(self, kinds: frozenset[str]) -> None:
        """Re-render what `kinds` touched and queue the differences to every subscriber."""
        with self._lock:
            if kinds & pages.ROW_KINDS:
                self.rows.invalidate()
            notify = self._new_notifications() if kinds & pages.NOTES else []
            if not self._topics:
                return
            if "sessions" in kinds:
                self._end_dead_streams()
            counts = views.counts() if kinds & (pages.COUNT_KINDS | pages.NOTES) else None
            for topic, state in list(self._topics.items()):
                names = pages.affected(topic, kinds)
                msg: dict[str, Any] = {}
                if names:
                    patch = state.diff(self._render(topic, names))
                    if patch:
                        msg["sections"] = patch
                if counts is not None and counts != state.counts:
                    state.counts = counts
                    msg["counts"] = counts
                if notify:
                    msg["notify"] = notify
                if msg:
                    self._send(state, sse("patch", json.dumps(msg)))

    def _end_dead_streams(self) -> None:
        for state in self._topics.values():
            for sub in list(state.subscribers):
                if sub.alive is not None and not sub.alive():
                    sub.closed = True
                    sub.put(None)
                    state.subscribers.discard(sub)

    def _new_notifications(self) -> list[dict[str, Any]]:
        fresh = views.notifications_after(self._note_max)
        if fresh:
            self._note_max = max(n["id"] for n in fresh)
        return fresh

    def _send(self, state: _Topic, frame: str) -> None:
        for sub in list(state.subscribers):
            if not sub.put(frame):
                state.subscribers.discard(sub)

    def _set_status(self, live: bool, error: str | None) -> None:
        status = {"live": live, "error": error}
        with self._lock:
            if status == self.status:
                return
            self.status = status
            frame = sse("patch", json.dumps({"status": status}))
            for state in self._topics.values():
                self._send(state, frame)

    # the watch loop ----------------------------------------------------------------------
    def start(self) -> None:
        self._note_max = views.notification_max()
        self._thread = threading.Thread(target=self._run, name="hive-web-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        client = self._client
        if client is not None:
            with contextlib.suppress(OSError):
                client.sock.shutdown(socket.SHUT_RDWR)
        with self._lock:
            for state in self._topics.values():
                for sub in state.subscribers:
                    sub.closed = True
                    sub.put(None)
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        backoff = 0.2
        while not self._stop.is_set():
            try:
                self._client = HiveClient(self.admin.path, timeout=10.0)
            except Unreachable as e:
                self._set_status(False, str(e))
                self._stop.wait(backoff)
                backoff = min(5.0, backoff * 2)
                continue
            try:
                self._watch(self._client)
            except (Unreachable, Refused, OSError, ValueError) as e:
                if not self._stop.is_set():
                    self._set_status(False, f"lost the coordinator: {e}")
                    hlog.log(f"watch loop: {e}", kind="web_request", priority=hlog.WARNING)
            finally:
                self._client.close()
                self._client = None
            self._stop.wait(backoff)

    def _watch(self, client: HiveClient) -> None:
        after = -1
        while not self._stop.is_set():
            reply = client.call("watch", after=after, wait_seconds=WATCH_WAIT)
            version = int(reply["changes"])
            kinds = frozenset(str(k) for k in reply.get("kinds", ())) & ALL_KINDS
            if after == -1:
                kinds = ALL_KINDS  # a first watch (or after a reconnect): everything may differ
                self.rows.invalidate()
            after = version
            self.version = version
            self._set_status(True, None)
            if kinds:
                started = time.monotonic()
                try:
                    self.refresh(kinds)
                except Exception as e:  # a bad render must not stop the live updates
                    hlog.log(
                        f"live update failed: {e!r}\n{traceback.format_exc()}",
                        kind="web_request",
                        priority=hlog.ERR,
                    )
                gap = MIN_PUSH_GAP - (time.monotonic() - started)
                if gap > 0:
                    self._stop.wait(gap)
