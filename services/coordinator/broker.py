"""The message broker: durable sends, and receives woken the moment a message lands.

A message is written to SQLite before anyone is told. `delivered_at` is set exactly once:
either in the transaction that hands the message to a live receiver, or — for a receiver
that asks to acknowledge — when it acks, the message being leased to its connection
(`claimed_at`) until then and returned to the inbox if the connection goes away first.
A reply that cannot reach its receiver is put back. Waiters are woken by sends in this
process, by the doorbell other processes ring, and only as a safety net by a slow poll.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from dataclasses import dataclass, field

from services.coordinator.connection import Connection
from services.hive.db import Message, now, write_tx
from services.hive.inbox import insert_message
from services.hive.protocol import Refusal

MAX_WAIT_SECONDS = 180


class _Kicked:
    """Sentinel: the operator kicked the agent; re-check the inbox, then return."""


KICKED = _Kicked()
Wake = Message | _Kicked | None  # a handed-off message, a kick, or "look again"


@dataclass
class Waiter:
    conn: Connection
    lease: bool
    future: asyncio.Future[Wake] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


@dataclass(frozen=True)
class Received:
    message: Message | None
    kicked: bool = False


class Broker:
    def __init__(self) -> None:
        self._waiters: dict[str, deque[Waiter]] = {}
        self._last_seen_id = 0

    # sending -------------------------------------------------------------------------------
    def send(self, sender: str, recipient: str, body: str) -> Message:
        """Store a message; hand it straight to a waiting receiver if its inbox is empty."""
        with write_tx():
            waiter = self._live_waiter(recipient)
            if waiter is not None and self._has_backlog(recipient):
                waiter = None
            msg = insert_message(
                sender,
                recipient,
                body,
                delivered=waiter is not None and not waiter.lease,
                claimed=waiter is not None and waiter.lease,
            )
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
                if isinstance(woke, Message):
                    return Received(woke)
                kicked = kicked or woke is KICKED
            elif conn.gone.is_set() or loop.time() >= deadline:
                return Received(None)  # timed out or the peer left

    def claim(self, recipient: str, lessee: Connection | None = None) -> Message | None:
        """Take the oldest waiting message for `recipient`: delivered, or leased to `lessee`."""
        with write_tx():
            msg = (
                Message.select()
                .where(
                    (Message.recipient == recipient)
                    & Message.delivered_at.is_null()
                    & Message.claimed_at.is_null()
                )
                .order_by(Message.id)
                .first()
            )
            if msg is None:
                return None
            stamp = now()
            if lessee is None:
                msg.delivered_at = stamp
                Message.update(delivered_at=stamp).where(Message.id == msg.id).execute()
            else:
                msg.claimed_at = stamp
                Message.update(claimed_at=stamp).where(Message.id == msg.id).execute()
        if lessee is not None:
            lessee.leases.add(msg.id)
        result: Message = msg
        return result

    def unclaim(self, msg: Message, conn: Connection | None = None) -> None:
        """Put back a message whose delivery never reached its receiver."""
        with write_tx():
            Message.update(delivered_at=None, claimed_at=None).where(Message.id == msg.id).execute()
        if conn is not None:
            conn.leases.discard(msg.id)
        self.wake(msg.recipient)

    def ack(self, conn: Connection, recipient: str, message_id: int) -> bool:
        """Mark a leased message delivered; False if it was already (an ack is idempotent)."""
        with write_tx():
            changed = (
                Message.update(delivered_at=now(), claimed_at=None)
                .where(
                    (Message.id == message_id)
                    & (Message.recipient == recipient)
                    & Message.delivered_at.is_null()
                )
                .execute()
            )
            if not changed and not (
                Message.select()
                .where((Message.id == message_id) & (Message.recipient == recipient))
                .exists()
            ):
                raise Refusal(f"no message #{message_id} for {recipient}")
        conn.leases.discard(message_id)
        return bool(changed)

    def release(self, conn: Connection) -> None:
        """A connection went away: its unacknowledged messages go back to the inbox."""
        if not conn.leases:
            return
        ids = list(conn.leases)
        conn.leases.clear()
        with write_tx():
            Message.update(claimed_at=None).where(
                Message.id.in_(ids) & Message.delivered_at.is_null()
            ).execute()
        query = Message.select(Message.recipient).where(Message.id.in_(ids))
        for recipient in {str(m.recipient) for m in query}:
            self.wake(recipient)

    @staticmethod
    def release_all() -> None:
        """At start: leases held by connections of a previous coordinator are void."""
        with write_tx():
            Message.update(claimed_at=None).where(
                Message.claimed_at.is_null(False) & Message.delivered_at.is_null()
            ).execute()

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
        last = Message.select(Message.id).order_by(Message.id.desc()).limit(1).scalar() or 0
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

    def backlog(self, recipient: str) -> int:
        """Undelivered messages for `recipient`."""
        count: int = (
            Message.select()
            .where((Message.recipient == recipient) & Message.delivered_at.is_null())
            .count()
        )
        return count

    # internals -----------------------------------------------------------------------------
    def _live_waiter(self, recipient: str) -> Waiter | None:
        queue = self._waiters.get(recipient)
        while queue:
            waiter = queue[0]
            if not waiter.future.done() and waiter.conn.peer_listening():
                return waiter
            queue.popleft()
        return None

    def _has_backlog(self, recipient: str) -> bool:
        exists: bool = (
            Message.select(Message.id)
            .where(
                (Message.recipient == recipient)
                & Message.delivered_at.is_null()
                & Message.claimed_at.is_null()
            )
            .exists()
        )
        return exists

    def _remove(self, recipient: str, waiter: Waiter) -> None:
        queue = self._waiters.get(recipient)
        if queue is None:
            return
        with contextlib.suppress(ValueError):
            queue.remove(waiter)
        if not queue:
            del self._waiters[recipient]
