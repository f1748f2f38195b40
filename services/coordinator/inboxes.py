"""An agent's inbox as the operator sees it, and the messages taken out of delivery.

A message that can never reach its receiver (its `recv` reply would pass the line limit,
it is not UTF-8, or the harness could not read it) is set aside instead of being handed
out again; the operator lists an inbox and drops any message not yet delivered. A message
set aside or dropped is never delivered. Raw SQL on the broker's table, like the broker.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from ..hive import log as hlog
from ..hive.db import now, raw, raw_write_tx
from ..hive.protocol import MAX_LINE, RECV_ENVELOPE, Refusal, encode, ok
from ..hive.vocab import Code
from ..hive.wire import InboxRow

OPEN = "delivered_at IS NULL AND set_aside_at IS NULL AND dropped_at IS NULL"
"""A message still waiting for delivery (queued, or leased to a receiver until its ack)."""

LISTED = 1000
"""Most messages `inbox` looks at (the newest); older ones are counted as omitted."""

PREVIEW_CHARS = 80


class NoSuchMessage(Refusal):
    code = Code.NOT_FOUND


def recv_reply_size(message: dict[str, Any]) -> int:
    """Bytes of the `recv` reply line that would carry `message` (newline excluded)."""
    return len(encode(ok(message=message))) - 1


def undeliverable(body: bytes, message: dict[str, Any]) -> tuple[str | None, str | None]:
    """(the body as text, None) if `recv` can carry it, else (None, why it cannot)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None, "its body is not valid UTF-8"
    if 6 * len(body) + RECV_ENVELOPE <= MAX_LINE:
        return text, None  # the common case: fits even if every byte were escaped
    try:
        size = recv_reply_size({**message, "body": text})
    except Refusal:
        return None, "its body is not valid Unicode text"
    if size > MAX_LINE:
        return None, (
            f"its recv reply would be {size} bytes, over the {MAX_LINE}-byte line limit "
            f"(a body of {len(body)} bytes, stored before sizes were counted in bytes)"
        )
    return text, None


def mark_set_aside(db: sqlite3.Connection, message_id: int, reason: str) -> tuple[str, str]:
    """Set a message aside inside the caller's write transaction; (sender, recipient)."""
    stamp = now()
    row = db.execute(
        "UPDATE messages SET set_aside_at = ?, set_aside_reason = ?, claimed_at = NULL, "
        "delivered_at = NULL WHERE id = ? RETURNING sender, recipient",
        (stamp, reason, message_id),
    ).fetchone()
    sender, recipient = str(row[0]), str(row[1])
    db.execute(
        "INSERT INTO notifications (kind, agent, text, created_at, seen) VALUES (?, ?, ?, ?, 0)",
        (
            "message_set_aside",
            recipient,
            f"message #{message_id} from {sender} to {recipient} set aside: {reason}",
            stamp,
        ),
    )
    return sender, recipient


def log_set_aside(message_id: int, recipient: str, reason: str) -> None:
    hlog.log(
        f"message #{message_id} to {recipient} set aside: {reason}; "
        f"see `hivectl inbox {recipient}`, drop it with `hivectl drop {message_id}`",
        kind="message_set_aside",
        agent=recipient,
        priority=hlog.WARNING,
        message_no=message_id,
    )


def set_aside_for(agent: str, message_id: int | None, reason: str) -> int:
    """The agent's harness could not use a message of its own inbox: set it aside.

    Without an id, the head of its inbox (the oldest message not yet delivered).
    """
    with raw_write_tx() as db:
        if message_id is None:
            row = db.execute(
                f"SELECT id FROM messages WHERE recipient = ? AND {OPEN} ORDER BY id LIMIT 1",
                (agent,),
            ).fetchone()
            if row is None:
                raise NoSuchMessage(f"the inbox of {agent} is empty: there is nothing to set aside")
        else:
            row = db.execute(
                f"SELECT id FROM messages WHERE id = ? AND recipient = ? AND {OPEN}",
                (message_id, agent),
            ).fetchone()
            if row is None:
                raise NoSuchMessage(
                    f"no undelivered message #{message_id} for {agent}: an agent can set aside "
                    "only a message of its own inbox that is not yet delivered"
                )
        chosen = int(row[0])
        mark_set_aside(db, chosen, reason)
    log_set_aside(chosen, agent, reason)
    return chosen


def drop(message_id: int, note: str | None) -> InboxRow:
    """The operator removes an undelivered message (queued, leased or set aside)."""
    with raw_write_tx() as db:
        row = db.execute(
            "SELECT recipient, delivered_at, dropped_at FROM messages WHERE id = ?", (message_id,)
        ).fetchone()
        if row is None:
            raise NoSuchMessage(f"no message #{message_id}: see `hivectl inbox NAME`")
        recipient = str(row[0])
        if row[2] is not None:
            raise NoSuchMessage(f"message #{message_id} is already dropped", code=Code.CONFLICT)
        if row[1] is not None:
            raise NoSuchMessage(
                f"message #{message_id} was already delivered to {recipient}: only "
                "undelivered messages can be dropped",
                code=Code.CONFLICT,
            )
        db.execute(
            "UPDATE messages SET dropped_at = ?, drop_note = ?, claimed_at = NULL WHERE id = ?",
            (now(), note, message_id),
        )
    hlog.log(
        f"operator dropped message #{message_id} to {recipient}" + (f" ({note})" if note else ""),
        kind="message_dropped",
        agent=recipient,
        message_no=message_id,
    )
    return one(message_id)


_ROW = (
    "SELECT id, sender, recipient, length(CAST(body AS BLOB)), "
    "substr(CAST(body AS BLOB), 1, 4 * ?), created_at, claimed_at, delivered_at, "
    "set_aside_at, set_aside_reason, dropped_at, drop_note FROM messages"
)


def _status(row: tuple[Any, ...]) -> str:
    if row[10] is not None:
        return "dropped"
    if row[8] is not None:
        return "set_aside"
    if row[7] is not None:
        return "delivered"
    if row[6] is not None:
        return "leased"
    return "queued"


def preview(head: bytes) -> str:
    """The first characters of a body, on one line (control characters become spaces)."""
    text = head.decode("utf-8", "replace")[:PREVIEW_CHARS]
    return "".join(c if c.isprintable() else " " for c in text)


def _view(row: tuple[Any, ...]) -> InboxRow:
    status = _status(row)
    return {
        "id": row[0],
        "sender": row[1],
        "recipient": row[2],
        "size": row[3],
        "preview": preview(bytes(row[4] or b"")),
        "created_at": row[5],
        "status": status,
        "reason": row[9] if status == "set_aside" else row[11] if status == "dropped" else None,
        "delivered_at": row[7],
        "set_aside_at": row[8],
        "dropped_at": row[10],
    }


def one(message_id: int) -> InboxRow:
    row = raw().execute(f"{_ROW} WHERE id = ?", (PREVIEW_CHARS, message_id)).fetchone()
    if row is None:
        raise NoSuchMessage(f"no message #{message_id}: see `hivectl inbox NAME`")
    return _view(row)


def listing(agent: str, include_done: bool = False) -> tuple[list[InboxRow], int]:
    """The agent's undelivered messages (all of its messages with `include_done`), oldest
    first, at most `LISTED` of the newest; and how many older ones were left out."""
    where = "recipient = ?" + ("" if include_done else " AND delivered_at IS NULL")
    where += "" if include_done else " AND dropped_at IS NULL"
    db = raw()
    total = int(db.execute(f"SELECT COUNT(*) FROM messages WHERE {where}", (agent,)).fetchone()[0])
    rows = db.execute(
        f"{_ROW} WHERE {where} ORDER BY id DESC LIMIT ?", (PREVIEW_CHARS, agent, LISTED)
    ).fetchall()
    return [_view(r) for r in reversed(rows)], total - len(rows)


def set_aside_count(agents: list[str]) -> dict[str, int]:
    """Messages set aside and not dropped, per recipient (what the operator should look at)."""
    marks = ",".join("?" * len(agents))
    rows = raw().execute(
        f"SELECT recipient, COUNT(*) FROM messages WHERE recipient IN ({marks}) "
        "AND set_aside_at IS NOT NULL AND dropped_at IS NULL AND delivered_at IS NULL "
        "GROUP BY recipient",
        agents,
    )
    return {str(r[0]): int(r[1]) for r in rows}
