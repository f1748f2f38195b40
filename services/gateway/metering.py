"""What one model response used: read from the bytes passing through, never altering them.

A streamed response's usage is in its `message_start` event (input and cache tokens, and
the model) and its `message_delta` events (output tokens so far; later fields override
earlier ones, as the API documents them as cumulative). A plain JSON response carries it
whole. The parser looks only at those events and keeps at most one event in memory.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..hive.pricing import cost

MAX_EVENT = 1024 * 1024
"""Bytes of one server-sent event the parser keeps; a larger one is passed on unread."""
MAX_JSON = 16 * 1024 * 1024
"""Bytes of a plain JSON response the meter keeps to read its usage."""
WANTED = (b"event: message_", b"event:message_")
"""How the events the meter reads begin (the API writes `event: <name>` first)."""
FIELDS = (
    ("input_tokens", "input_tokens"),
    ("output_tokens", "output_tokens"),
    ("cache_creation_input_tokens", "cache_write_tokens"),
    ("cache_read_input_tokens", "cache_read_tokens"),
)


@dataclass
class Metered:
    """The usage of one response as the API reported it."""

    model: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cache_write_tokens: int = 0
    cache_read_tokens: int = 0
    seen: bool = False
    """A usage block was read (a response without one is not recorded)."""
    complete: bool = False
    """The response reached its end (`message_stop`, or the whole JSON body)."""

    @property
    def cost_usd(self) -> float:
        return cost(
            self.model or "",
            input=self.input_tokens,
            output=self.output_tokens,
            cache_write=self.cache_write_tokens,
            cache_read=self.cache_read_tokens,
        )

    def take(self, usage: object) -> None:
        """Fold in one usage block: each count it names replaces the one before."""
        if not isinstance(usage, dict):
            return
        for api_name, ours in FIELDS:
            value = usage.get(api_name)
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                setattr(self, ours, value)
                self.seen = True


def _model(value: object) -> str | None:
    return value[:100] if isinstance(value, str) and value else None


class StreamMeter:
    """Feed it the bytes of a `text/event-stream` response as they pass; read `.usage`."""

    def __init__(self) -> None:
        self.usage = Metered()
        self._buf = bytearray()
        self._skipping = False  # inside an event over MAX_EVENT: drop until its end
        self._cr = False  # the last piece ended in CR: its LF may start the next one

    def feed(self, data: bytes) -> None:
        if self._cr:
            data = b"\r" + data
        self._cr = data.endswith(b"\r")
        if self._cr:
            data = data[:-1]
        if b"\r" in data:  # SSE lines end in LF, CRLF or CR: one spelling here
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        self._buf += data
        buf = self._buf
        start = 0
        while True:
            end = buf.find(b"\n\n", start)
            if end < 0:
                break
            if self._skipping:
                self._skipping = False
            else:
                self._event(bytes(buf[start:end]))
            start = end + 2
        del buf[:start]  # once per piece: no copying the rest over again for each event
        if len(buf) > MAX_EVENT:
            self._skipping = True
            del buf[:-1]  # keep a trailing "\n" that may start the boundary

    def _event(self, block: bytes) -> None:
        if block.startswith(b"event:") and not block.startswith(WANTED):
            return  # most events: text deltas, pings (the fast path)
        name = b""
        data: list[bytes] = []
        for line in block.split(b"\n"):
            if line.startswith(b"event:"):
                name = line[6:].strip()
            elif line.startswith(b"data:"):
                data.append(line[5:].lstrip(b" "))
        if name not in (b"message_start", b"message_delta", b"message_stop"):
            return
        if name == b"message_stop":
            self.usage.complete = True
            return
        try:
            payload: Any = json.loads(b"\n".join(data))
        except ValueError:
            return
        if not isinstance(payload, dict):
            return
        if name == b"message_start":
            message = payload.get("message")
            if isinstance(message, dict):
                self.usage.model = _model(message.get("model")) or self.usage.model
                self.usage.take(message.get("usage"))
        else:
            self.usage.take(payload.get("usage"))


class JsonMeter:
    """Feed it the bytes of a plain JSON message response; `finish()` reads its usage."""

    def __init__(self) -> None:
        self.usage = Metered()
        self._buf = bytearray()
        self._over = False

    def feed(self, data: bytes) -> None:
        if self._over:
            return
        self._buf += data
        if len(self._buf) > MAX_JSON:
            self._over = True
            self._buf.clear()

    def finish(self) -> None:
        if self._over:
            return
        try:
            payload: Any = json.loads(bytes(self._buf))
        except ValueError:
            return
        if isinstance(payload, dict) and payload.get("type") == "message":
            self.usage.model = _model(payload.get("model"))
            self.usage.take(payload.get("usage"))
            self.usage.complete = True


Meter = StreamMeter | JsonMeter


def meter_for(content_type: str | None) -> Meter:
    if content_type and content_type.split(";")[0].strip().lower() == "text/event-stream":
        return StreamMeter()
    return JsonMeter()
