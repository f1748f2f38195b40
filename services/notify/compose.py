"""What a notification says: one notice as its own message, or a burst as one message, each
notice with its action link. Plain text only; what an agent wrote is quoted, never trusted.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..hive.db import OutboxItem
from ..hive.vocab import Notice


@dataclass(frozen=True)
class Message:
    title: str
    body: str
    urgent: bool


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.0f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"


def link_line(item: OutboxItem, url: str, valid: float) -> str:
    """The line that carries an action link, saying what the link does and for how long."""
    what = Notice(item.kind).item
    return f"→ {what.offer if what else 'open'} (one use, {_hours(valid)}): {url}"


def _indent(text: str, lines: int) -> str:
    kept = [x for x in text.splitlines() if x.strip()][:lines]
    return "\n".join("  " + x for x in kept)


def message(
    items: list[OutboxItem],
    more: int,
    links: dict[int, tuple[str, float]],
    dashboard: str | None,
) -> Message:
    """The message for `items` (and `more` not listed); `links` maps item id → (url, ttl)."""
    urgent = any(Notice(i.kind).urgent for i in items)
    if len(items) == 1 and not more:
        item = items[0]
        parts = [item.body] if item.body else []
        if int(item.id) in links:
            url, valid = links[int(item.id)]
            parts.append(link_line(item, url, valid))
        elif dashboard and Notice(item.kind).item is not None:
            parts.append(f"→ on the dashboard: {dashboard}/")
        return Message(f"hyperhive: {item.title}", "\n\n".join(parts), urgent)
    total = len(items) + more
    blocks = []
    for item in items:
        block = [f"• {item.title}"]
        if item.body:
            block.append(_indent(item.body, 3))
        if int(item.id) in links:
            url, valid = links[int(item.id)]
            block.append("  " + link_line(item, url, valid))
        blocks.append("\n".join(block))
    if more:
        where = f": {dashboard}/" if dashboard else " on the dashboard"
        blocks.append(f"… and {more} more{where}")
    return Message(f"hyperhive: {total} notices", "\n\n".join(blocks), urgent)
