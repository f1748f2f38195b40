"""How values read as text on the dashboard: tokens, durations, clock times, diffs, events.

Returns plain strings and lists; escaping is the templates' job, never done here.
"""

from __future__ import annotations

import json
import time
from typing import Any

from ..hive.events import EventError, from_json

EVENT_GLYPHS = {
    "approval_resolved": "◆",
    "spawned": "✦",
    "rebuilt": "↻",
    "killed": "✗",
    "destroyed": "✗",
    "container_crash": "⚠",
    "operator_answered": "❯",
}


def clock(ts: float | None) -> str:
    """Local wall-clock time of an epoch timestamp (the text before JS makes it relative)."""
    if ts is None:
        return "—"
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))
    except (OverflowError, OSError, ValueError):  # an agent may report any finite number
        return "—"


def duration(seconds: float | None) -> str:
    if seconds is None or not 0 <= seconds < float("inf"):  # an agent's numbers may overflow
        return "—"
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def tokens(n: int) -> str:
    for size, unit, digits in ((1_000_000, "M", 2), (1000, "k", 1)):
        if n >= size:
            return f"{n / size:.{digits}f}{unit} tok"
    return f"{n} tok"


def cost(usd: float) -> str:
    return f"${usd:.2f}" if usd >= 0.01 or usd == 0 else f"${usd:.4f}"


def diff_lines(diff: str | None) -> list[tuple[str, str]]:
    """(css class, line) for each line of a unified diff."""
    out: list[tuple[str, str]] = []
    for line in (diff or "").splitlines():
        if line.startswith(("+++", "---")):
            cls = "d-file"
        elif line.startswith("@@"):
            cls = "d-hunk"
        elif line.startswith("+"):
            cls = "d-add"
        elif line.startswith("-"):
            cls = "d-del"
        else:
            cls = "d-ctx"
        out.append((cls, line))
    return out


def helper_event(body: str) -> dict[str, Any] | None:
    """A helper event body shown as glyph, name and fields; None when it is not one."""
    try:
        event = from_json(body)
    except EventError:
        return None
    data = event.to_dict()
    name = str(data.pop("event"))
    fields = [(k, _field_text(v)) for k, v in data.items() if v is not None]
    return {"glyph": EVENT_GLYPHS.get(name, "◇"), "name": name, "fields": fields}


def _field_text(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        return value
    return json.dumps(value)
