"""The message broker: durable sends, and receives woken the moment a message lands.

A message is written to SQLite before anyone is told. `delivered_at` is set exactly once:
either in the transaction that hands the message to a live receiver, or — for a receiver
that asks to acknowledge — when it acks, the message being leased to its connection
(`claimed_at`) until then and returned to the inbox if the connection goes away first.
A reply that cannot reach its receiver is put back; a message no reply line can carry is
set aside (`inboxes`), never handed out. Waiters are woken by sends in this process, by
the doorbell other processes ring, and only as a safety net by a slow poll.
The hot path speaks SQL directly: building queries through the ORM cost more than the
queries.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from ..hive.db import now, raw, raw_write_tx
from ..hive.protocol import Refusal
from ..hive.vocab import Code
from ..hive.wire import MessageRow
from . import inboxes
from .connection import Connection

MAX_WAIT_SECONDS = 180

_COLUMNS = "id, sender, recipient, CAST(body AS BLOB), created_at"
_NEXT_ID = (
    f"SELECT id FROM messages WHERE recipient = ? AND {inboxes.OPEN} "
    "AND claimed_at IS NULL ORDER BY id LIMIT 1"
)
_WAITING = (
    f"SELECT 1 FROM messages WHERE recipient = ? AND {inboxes.OPEN} AND claimed_at IS NULL LIMIT 1"
)
_INSERT = (
    "INSERT INTO messages (sender, recipient, body, created_at, claimed_at, delivered_at) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)


@dataclass(frozen=True)
class Msg:
    """A message as the broker hands it out (the columns `recv` returns)."""

    id: int
    sender: str
    recipient: str
    body: str
    created_at: float

    def to_dict(self) -> MessageRow:
        return MessageRow(
            id=self.id,
            sender=self.sender,
            recipient=self.recipient,
            body=self.body,
            created_at=self.created_at,
        )


class _Kicked:
    """Sentinel: the operator kicked the agent; re-check the inbox, then return."""


KICKED = _Kicked()
Wake = Msg | _Kicked | None  # a handed-off message, a kick, or "look again"


@dataclass
class Waiter:
    conn: Connection
    lease: bool
    future: asyncio.Future[Wake] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


@dataclass(frozen=True)
class Received:
    message: Msg | None
    kicked: bool = False


class Broker:
    def __init__(self, changed: Callable[..., None] = lambda *kinds: None) -> None:
        self._waiters: dict[str, deque[Waiter]] = {}
        self._last_seen_id = 0
        self._changed = changed

    # sending -------------------------------------------------------------------------------
    def send(self, sender: str, recipient: str, body: str) -> Msg:
        """Store a message; hand it straight to a waiting receiver if its inbox is empty."""
        stamp = now()
        with raw_write_tx() as db:
            waiter = self._live_waiter(recipient)
            if waiter is not None and db.execute(_WAITING, (recipient,)).fetchone():
                waiter = None  # older messages go first
            if waiter is not None:
                fits = {"id": 2**62, "sender": sender, "recipient": recipient, "created_at": stamp}
                if inboxes.undeliverable(body.encode("utf-8", "surrogatepass"), fits)[1]:
                    waiter = None  # `recv` sets it aside and says why
            delivered = stamp if waiter is not None and not waiter.lease else None
            claimed = stamp if waiter is not None and waiter.lease else None
            cur = db.execute(_INSERT, (sender, recipient, body, stamp, claimed, delivered))
            msg = Msg(int(cur.lastrowid or 0), sender, recipient, body, stamp)
        self._last_seen_id = max(self._last_seen_id, msg.id)
        if waiter is not None:
            self._remove(recipient, waiter)
            if waiter.lease:
                waiter.conn.leases.add(msg.id)
            waiter.future.set_result(msg)
        else:
            self.wake(recipient)
        return msg

    # receiving -----------------------------------------------------------------------------
    async def recv(
        self, conn: Connection, recipient: str, wait_seconds: float, lease: bool = False
    ) -> Received:
        """The oldest undelivered message for `recipient`, waiting up to `wait_seconds`.

        With `lease`, the message stays undelivered, leased to `conn`, until `ack`.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_seconds
        kicked = False
        while True:
            if not conn.peer_listening():
                return Received(None)
            msg = self.claim(recipient, conn if lease else None)
            if msg is not None or kicked:
                return Received(msg, kicked=kicked and msg is None)
            remaining = deadline - loop.time()
            if remaining <= 0:
                return Received(None)
            waiter = Waiter(conn, lease)
            self._waiters.setdefault(recipient, deque()).append(waiter)
            try:
                await conn.wait_while_connected(waiter.future, remaining)
            finally:
                self._remove(recipient, waiter)
            if waiter.future.done():
                woke = waiter.future.result()
                if isinstance(woke, Msg):
                    return Received(woke)
                kicked = kicked or woke is KICKED
            elif conn.gone.is_set() or loop.time() >= deadline:
                return Received(None)  # timed out or the peer left

    def claim(self, recipient: str, lessee: Connection | None = None) -> Msg | None:
        """Take the oldest waiting message for `recipient`: delivered, or leased to `lessee`.

        A message no `recv` reply can carry is set aside on the way and the next one taken.
        """
        db = raw()
        column = "delivered_at" if lessee is None else "claimed_at"
        while True:
            if db.execute(_WAITING, (recipient,)).fetchone() is None:
                return None  # the common empty inbox: no write lock taken
            # One statement, so one implicit write transaction: select-then-update atomically.
            rows = db.execute(  # fetchall: the statement (and its transaction) must finish
                f"UPDATE messages SET {column} = ? WHERE id = ({_NEXT_ID}) RETURNING {_COLUMNS}",
                (now(), recipient),
            ).fetchall()
            if not rows:
                return None
            mid, sender, to, body, created = rows[0]
            envelope = {"id": mid, "sender": sender, "recipient": to, "created_at": created}
            text, why = inboxes.undeliverable(bytes(body), envelope)
            if text is not None:
                break
            with raw_write_tx() as tx:
                inboxes.mark_set_aside(tx, mid, str(why))
            inboxes.log_set_aside(mid, recipient, str(why))
            self._changed("messages", "notifications")
        if lessee is not None:
            lessee.leases.add(mid)
        return Msg(mid, sender, to, text, created)

    def unclaim(self, msg: Msg, conn: Connection | None = None) -> None:
        """Put back a message whose delivery never reached its receiver."""
        with raw_write_tx() as db:
            db.execute(
                "UPDATE messages SET delivered_at = NULL, claimed_at = NULL WHERE id = ?",
                (msg.id,),
            )
        if conn is not None:
            conn.leases.discard(msg.id)
        self.wake(msg.recipient)

    def ack(self, conn: Connection, recipient: str, message_id: int) -> bool:
        """Mark a leased message delivered; False if it was already (an ack is idempotent)."""
        with raw_write_tx() as db:
            changed = db.execute(
                "UPDATE messages SET delivered_at = ?, claimed_at = NULL "
                f"WHERE id = ? AND recipient = ? AND {inboxes.OPEN}",
                (now(), message_id, recipient),
            ).rowcount
            known = (
                changed
                or db.execute(
                    "SELECT 1 FROM messages WHERE id = ? AND recipient = ?", (message_id, recipient)
                ).fetchone()
            )
        if not known:
            raise Refusal(f"no message #{message_id} for {recipient}", code=Code.NOT_FOUND)
        conn.leases.discard(message_id)
        return bool(changed)

    def release(self, conn: Connection) -> None:
        """A connection went away: its unacknowledged messages go back to the inbox."""
        if not conn.leases:
            return
        ids = sorted(conn.leases)
        conn.leases.clear()
        marks = ",".join("?" * len(ids))
        with raw_write_tx() as db:
            db.execute(
                f"UPDATE messages SET claimed_at = NULL "
                f"WHERE id IN ({marks}) AND delivered_at IS NULL",
                ids,
            )
            rows = db.execute(f"SELECT DISTINCT recipient FROM messages WHERE id IN ({marks})", ids)
            recipients = [r[0] for r in rows]
        for recipient in recipients:
            self.wake(recipient)

    @staticmethod
    def release_all() -> None:
        """At start: leases held by connections of a previous coordinator are void."""
        with raw_write_tx() as db:
            db.execute(
                "UPDATE messages SET claimed_at = NULL "
                "WHERE claimed_at IS NOT NULL AND delivered_at IS NULL"
            )

    # waking --------------------------------------------------------------------------------
    def wake(self, recipient: str) -> None:
        """Tell every waiter of `recipient` to look at its inbox again."""
        for waiter in self._waiters.get(recipient, ()):
            if not waiter.future.done():
                waiter.future.set_result(None)

    def kick(self, recipient: str) -> int:
        """Wake `recipient`'s receivers so they read their inbox; the number woken."""
        woken = 0
        for waiter in self._waiters.get(recipient, ()):
            if not waiter.future.done():
                waiter.future.set_result(KICKED)
                woken += 1
        return woken

    def check_external(self) -> bool:
        """Wake waiters whose inbox another process wrote to (doorbell or safety-net poll).

        True if there were messages this process had not seen.
        """
        last = raw().execute("SELECT COALESCE(MAX(id), 0) FROM messages").fetchone()[0]
        if last == self._last_seen_id:
            return False
        self._last_seen_id = last
        for recipient in list(self._waiters):
            self.wake(recipient)
        return True

    def waiting(self, recipient: str | None = None) -> int:
        """How many receivers are waiting (for one recipient or in all)."""
        if recipient is not None:
            return len(self._waiters.get(recipient, ()))
        return sum(len(q) for q in self._waiters.values())

    @staticmethod
    def backlog(recipient: str) -> int:
        """Messages for `recipient` waiting for delivery (leased ones included)."""
        query = f"SELECT COUNT(*) FROM messages WHERE recipient = ? AND {inboxes.OPEN}"
        return int(raw().execute(query, (recipient,)).fetchone()[0])

    # internals -----------------------------------------------------------------------------
    def _live_waiter(self, recipient: str) -> Waiter | None:
        queue = self._waiters.get(recipient)
        while queue:
            waiter = queue[0]
            if not waiter.future.done() and waiter.conn.peer_listening():
                return waiter
            queue.popleft()
        return None

    def _remove(self, recipient: str, waiter: Waiter) -> None:
        queue = self._waiters.get(recipient)
        if queue is None:
            return
        if waiter in queue:
            queue.remove(waiter)
        if not queue:
            del self._waiters[recipient]
