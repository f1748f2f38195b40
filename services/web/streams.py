"""The live routes: the dashboard's change stream (`/api/events`) and an agent's journal, its
last lines and its following stream. Every stream holds a slot (`StreamSlots`) from before
its first frame until it ends, and ends with its session.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator

from bottle import HTTPError, request, response  # type: ignore[import-untyped]

from . import journal, pages
from .auth import Visitor
from .context import Context, path_agent, visitor
from .live import HEARTBEAT, sse


def stream(frames: Iterator[str], release: Callable[[], None]) -> Iterator[str]:
    try:
        yield "retry: 1000\n: " + " " * 2048 + "\n\n"  # defeat proxy buffering at once
        yield from frames
    finally:
        release()


def take_slot(ctx: Context) -> Visitor:
    """A stream slot for the request's session, or 503 with why not."""
    who = visitor()
    why = ctx.slots.acquire(who.session_id)
    if why is not None:
        raise HTTPError(503, why)
    return who


def sse_headers() -> None:
    response.content_type = "text/event-stream; charset=utf-8"
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Accel-Buffering"] = "no"


def events(ctx: Context) -> Iterator[str]:
    """GET /api/events?topic=index|agent:<name>: the hub's pushes for one topic."""
    topic = request.query.getunicode("topic") or pages.INDEX
    agent = pages.topic_agent(topic)
    if not pages.known_topic(topic):
        raise HTTPError(400, "topic must be 'index', 'waiting', 'history' or 'agent:<name>'")
    if agent is not None:
        path_agent(agent)
    who = take_slot(ctx)
    try:
        sub = ctx.hub.subscribe(topic, lambda: ctx.doorkeeper.live(who))
    except Exception:
        ctx.slots.release(who.session_id)
        raise

    def frames() -> Iterator[str]:
        while not ctx.stopping.is_set():
            frame = sub.get(HEARTBEAT)
            if frame is None:
                return
            if not frame and not ctx.doorkeeper.live(who):
                return  # signed out or revoked: the stream ends with the session
            yield frame or ": beat\n\n"

    def release() -> None:
        ctx.hub.unsubscribe(sub)
        ctx.slots.release(who.session_id)

    sse_headers()
    return stream(frames(), release)


def journal_recent(ctx: Context, name: str) -> str:
    """GET /api/journal/<name>?lines=N: the agent's last N journal lines as JSON."""
    name = path_agent(name)
    lines = request.query.get("lines", "200")
    try:
        entries = journal.recent(ctx.journal, name, int(lines) if lines.isdigit() else 200)
    except journal.JournalUnavailable as e:
        raise HTTPError(503, str(e)) from None
    response.content_type = "application/json"
    return json.dumps({"agent": name, "entries": entries})


def journal_stream(ctx: Context, name: str) -> Iterator[str]:
    """GET /api/journal/<name>/stream?after=CURSOR: new journal lines as they are written."""
    name = path_agent(name)
    after = request.headers.get("Last-Event-ID") or request.query.getunicode("after") or None
    who = take_slot(ctx)
    try:
        batches = journal.follow(ctx.journal, name, after, ctx.stopping)
    except journal.JournalUnavailable as e:
        ctx.slots.release(who.session_id)
        raise HTTPError(503, str(e)) from None

    def frames() -> Iterator[str]:
        quiet_since = time.monotonic()
        for batch in batches:
            if batch:
                quiet_since = time.monotonic()
                yield sse("lines", json.dumps(batch), batch[-1]["cursor"])
            elif time.monotonic() - quiet_since >= HEARTBEAT:
                if not ctx.doorkeeper.live(who):
                    return
                quiet_since = time.monotonic()
                yield ": beat\n\n"

    def release() -> None:
        batches.close()
        ctx.slots.release(who.session_id)

    sse_headers()
    return stream(frames(), release)
