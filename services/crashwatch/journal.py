"""The last lines an agent's unit wrote to the journal, for the crash note.

Reads the local journal (systemd.journal.Reader); never writes to it. Asks journald to
take in what is still queued first, so a dying payload's last words are not missed.
"""

from __future__ import annotations

import datetime
import json
import socket
from typing import Any

try:  # imported up front: the first crash should not pay for it
    from systemd import journal
except ImportError:  # pragma: no cover - systemd-python is a dependency
    journal = None

LINES = 10
MAX_LINE = 300
VARLINK = "/run/systemd/journal/io.systemd.journal"
SYNC_TIMEOUT = 1.0


def synchronize(path: str = VARLINK, timeout: float = SYNC_TIMEOUT) -> bool:
    """journald's Synchronize (what `journalctl --sync` calls): it returns once every line
    already sent, stdout streams included, is in the journal. Best effort (needs root).
    """
    call = {"method": "io.systemd.Journal.Synchronize", "parameters": {}}
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(path)
            s.sendall(json.dumps(call).encode() + b"\0")
            reply = b""
            while not reply.endswith(b"\0"):
                chunk = s.recv(4096)
                if not chunk:
                    return False
                reply += chunk
    except OSError:
        return False
    return b'"error"' not in reply


def format_entry(entry: dict[str, Any]) -> str:
    """`HH:MM:SS message`, the message cut to MAX_LINE characters."""
    message = entry.get("MESSAGE", "")
    if isinstance(message, bytes):
        message = message.decode("utf-8", "replace")
    text = str(message).rstrip()
    if len(text) > MAX_LINE:
        text = text[: MAX_LINE - 1] + "…"
    stamp = entry.get("__REALTIME_TIMESTAMP")
    if isinstance(stamp, datetime.datetime):
        return f"{stamp.astimezone().strftime('%H:%M:%S')} {text}"
    return text


def last_lines(
    unit: str, invocation_id: str = "", count: int = LINES, *, sync: bool = True
) -> list[str]:
    """The last `count` lines the processes of `unit` logged, oldest first.

    With an invocation id, only that run's lines (falls back to the unit's when the
    run logged nothing). Returns [] when the journal cannot be read.
    """
    if journal is None:
        return []
    if sync:
        synchronize()
    matches: list[dict[str, str]] = []
    if invocation_id:
        matches.append({"_SYSTEMD_UNIT": unit, "_SYSTEMD_INVOCATION_ID": invocation_id})
    matches.append({"_SYSTEMD_UNIT": unit})
    for match in matches:
        try:
            lines = _read(journal.Reader(), match, count)
        except OSError:
            return []
        if lines:
            return lines
    return []


def _read(reader: Any, match: dict[str, str], count: int) -> list[str]:
    with reader:
        for field, value in match.items():
            reader.add_match(f"{field}={value}")
        reader.seek_tail()
        found: list[str] = []
        while len(found) < count:
            entry = reader.get_previous()
            if not entry:
                break
            found.append(format_entry(entry))
    found.reverse()
    return found
