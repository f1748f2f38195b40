"""The journald viewer's reader: an agent's lines, the last N and then new ones as they land.

An agent's lines are those with HIVE_AGENT=<name> (its harness, and the coordinator's lines
about it) or from its unit hive-agent@<name>.service. Read-only; each call opens its own
Reader and closes it; never runs journalctl.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

MAX_LINES = 2000
BATCH = 500


class JournalUnavailable(Exception):
    """The journal cannot be opened; the message says why."""


@dataclass(frozen=True)
class JournalSource:
    """The system journal, or a journald namespace (`HIVE_WEB_JOURNAL_NAMESPACE`)."""

    namespace: str | None = None

    def open(self, agent: str) -> Any:
        try:
            from systemd import journal
        except ImportError as e:
            raise JournalUnavailable(f"systemd-python is not installed ({e})") from None
        try:
            reader = (
                journal.Reader(namespace=self.namespace) if self.namespace else journal.Reader()
            )
        except OSError as e:
            where = f"namespace {self.namespace!r}" if self.namespace else "the system journal"
            raise JournalUnavailable(f"cannot open {where}: {e.strerror or e}") from None
        reader.add_match(HIVE_AGENT=agent)
        reader.add_disjunction()
        reader.add_match(_SYSTEMD_UNIT=f"hive-agent@{agent}.service")
        return reader


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, list):
        return " ".join(_text(v) for v in value)
    return "" if value is None else str(value)


def entry_dict(entry: dict[str, Any]) -> dict[str, Any]:
    """One journal entry as the viewer shows it (every string is escaped by the browser)."""
    ts = entry.get("__REALTIME_TIMESTAMP")
    prio = entry.get("PRIORITY")
    return {
        "cursor": _text(entry.get("__CURSOR")),
        "ts": ts.timestamp() if isinstance(ts, datetime) else None,
        "prio": prio if isinstance(prio, int) else 6,
        "ident": _text(entry.get("SYSLOG_IDENTIFIER") or entry.get("_COMM") or "?"),
        "msg": _text(entry.get("MESSAGE")),
    }


def _take(step: Callable[[], dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    """Up to `limit` entries read with `step` (get_next or get_previous)."""
    out: list[dict[str, Any]] = []
    while len(out) < limit:
        entry = step()
        if not entry:
            break
        out.append(entry_dict(entry))
    return out


def recent(source: JournalSource, agent: str, lines: int = 200) -> list[dict[str, Any]]:
    """The agent's last `lines` entries, oldest first."""
    lines = max(1, min(lines, MAX_LINES))
    reader = source.open(agent)
    try:
        reader.seek_tail()
        out = _take(reader.get_previous, lines)
    finally:
        reader.close()
    out.reverse()
    return out


def follow(
    source: JournalSource,
    agent: str,
    after: str | None,
    stop: threading.Event,
    tick: float = 1.0,
) -> Generator[list[dict[str, Any]], None, None]:
    """Batches of entries newer than the cursor `after` (or than now), as they are written.

    Opens the journal at once, so JournalUnavailable is raised here, before the caller
    starts a response. Yields [] every `tick` seconds without news, so the caller can send
    heartbeats and notice a closed connection.
    """
    return _batches(source.open(agent), after, stop, tick)


def _batches(
    reader: Any, after: str | None, stop: threading.Event, tick: float
) -> Generator[list[dict[str, Any]], None, None]:
    try:
        if after:
            reader.seek_cursor(after)
            first = reader.get_next()
            if first and not reader.test_cursor(after):
                yield [entry_dict(first)]  # the cursor's own entry is gone: this one is new
        else:
            # Position on the newest entry (not past it), or on the head of an empty
            # journal: a bare seek_tail() loses entries written right after it.
            reader.seek_tail()
            if not reader.get_previous():
                reader.seek_head()
        while not stop.is_set():
            batch = _take(reader.get_next, BATCH)
            if batch:
                yield batch
                continue
            reader.wait(tick)
            yield []
    finally:
        reader.close()
