"""The outbox as hive-notify reads and records it: which notices are due on which channel,
which are moot, skipped or given up, and each delivery's outcome (sent, or when to retry).

Every write is one short `write_tx()`; nothing here talks to a channel. A notice is `sent`
once every usable channel has taken it, so a channel that fails never makes another send
twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from peewee import fn

from ..hive import actionlinks
from ..hive.db import (
    Approval,
    OperatorQuestion,
    OutboxDelivery,
    OutboxItem,
    write_tx,
)
from ..hive.vocab import ApprovalStatus, LinkItem, Notice, OutboxState, QuestionStatus

SCAN_LIMIT = 2000
"""Due notices read per look; more wait for the next one (they are sent oldest first)."""

KEEP_DONE = 30 * 86400.0
"""Seconds a notice that is done (sent, moot, skipped, expired) stays in the outbox."""


@dataclass(frozen=True)
class Due:
    """One notice to send on one channel, and how often that channel failed it."""

    item: OutboxItem
    attempts: int


def due_items(t: float) -> list[OutboxItem]:
    """Queued notices due by `t`, oldest first."""
    query = (
        OutboxItem.select()
        .where((OutboxItem.state == OutboxState.QUEUED) & (OutboxItem.due_at <= t))
        .order_by(OutboxItem.id)
        .limit(SCAN_LIMIT)
    )
    return list(query)


def next_due(t: float) -> float | None:
    """When the next queued notice falls due (a deadline reminder), None if none waits."""
    value = (
        OutboxItem.select(fn.MIN(OutboxItem.due_at))
        .where((OutboxItem.state == OutboxState.QUEUED) & (OutboxItem.due_at > t))
        .scalar()
    )
    return None if value is None else float(value)


def _close(item: OutboxItem, state: OutboxState, note: str, t: float) -> None:
    OutboxItem.update(state=state, done_at=t, note=note).where(
        (OutboxItem.id == item.id) & (OutboxItem.state == OutboxState.QUEUED)
    ).execute()


def moot_reason(item: OutboxItem) -> str | None:
    """Why a notice about an approval, a question or a reached cap no longer needs sending,
    or None."""
    kind = Notice(item.kind)
    if kind.item is LinkItem.BUDGET and item.item_id is not None:
        cap = actionlinks.cap_item(int(item.item_id))
        if cap is None:
            return f"the agent or the cap of budget_reached #{item.item_id} no longer exists"
        return actionlinks.cap_closed(cap)
    if kind.item is LinkItem.APPROVAL:
        a: Approval | None = Approval.get_or_none(Approval.id == item.item_id)
        if a is None:
            return f"approval #{item.item_id} no longer exists"
        if a.status != ApprovalStatus.PENDING:
            return f"approval #{a.id} was {a.status} before it was sent"
    elif kind.item is LinkItem.QUESTION:
        q: OperatorQuestion | None = OperatorQuestion.get_or_none(
            OperatorQuestion.id == item.item_id
        )
        if q is None:
            return f"question #{item.item_id} no longer exists"
        if q.status != QuestionStatus.PENDING:
            return f"question #{q.id} was {q.status} before it was sent"
    return None


@dataclass
class Settled:
    """Due notices sorted: those still to send, and those closed now (with why)."""

    live: list[OutboxItem]
    expired: list[OutboxItem]
    closed: int


def settle(items: list[OutboxItem], events: frozenset[Notice], give_up: float, t: float) -> Settled:
    """Close the notices that need no sending (kind not wanted, item resolved, too old).

    Decided from reads; the write lock is taken only when something is closed."""
    live: list[OutboxItem] = []
    expired: list[OutboxItem] = []
    closing: list[tuple[OutboxItem, OutboxState, str]] = []
    for item in items:
        try:
            kind = Notice(item.kind)
        except ValueError:
            closing.append((item, OutboxState.SKIPPED, f"unknown kind {item.kind!r}"))
            continue
        if kind not in events:
            closing.append((item, OutboxState.SKIPPED, "not in HIVE_NOTIFY_EVENTS"))
            continue
        why = moot_reason(item)
        if why is not None:
            closing.append((item, OutboxState.MOOT, why))
            continue
        if t - item.due_at > give_up:
            closing.append((item, OutboxState.EXPIRED, f"not delivered within {give_up:.0f} s"))
            expired.append(item)
            continue
        live.append(item)
    if closing:
        with write_tx():
            for item, state, note in closing:
                _close(item, state, note, t)
    return Settled(live, expired, len(closing))


def moot(item_id: int, why: str, t: float) -> None:
    """Close one notice as moot (its item was resolved while a message was being made)."""
    with write_tx():
        OutboxItem.update(state=OutboxState.MOOT, done_at=t, note=why).where(
            (OutboxItem.id == item_id) & (OutboxItem.state == OutboxState.QUEUED)
        ).execute()


def plan(items: list[OutboxItem], channel: str, t: float) -> tuple[list[Due], float | None]:
    """What `channel` should send now (not yet taken, retry time reached), and when its next
    retry falls due."""
    if not items:
        return [], None
    ids = [int(i.id) for i in items]
    rows = {
        int(d.item): d
        for d in OutboxDelivery.select().where(
            (OutboxDelivery.channel == channel) & OutboxDelivery.item.in_(ids)
        )
    }
    now_due: list[Due] = []
    later: float | None = None
    for item in items:
        d = rows.get(int(item.id))
        if d is None:
            now_due.append(Due(item, 0))
        elif d.sent_at is not None:
            continue
        elif d.next_try_at <= t:
            now_due.append(Due(item, int(d.attempts)))
        else:
            later = d.next_try_at if later is None else min(later, d.next_try_at)
    return now_due, later


def _chunks(ids: list[int], size: int = 500) -> Iterable[list[int]]:
    for i in range(0, len(ids), size):
        yield ids[i : i + size]


def _ensure(ids: list[int], channel: str, label: str) -> None:
    """A delivery row for each of `ids` on `channel` (inside the caller's transaction)."""
    for part in _chunks(ids):
        have = {
            int(d.item)
            for d in OutboxDelivery.select(OutboxDelivery.item).where(
                (OutboxDelivery.channel == channel) & OutboxDelivery.item.in_(part)
            )
        }
        new = [{"item": i, "channel": channel, "label": label} for i in part if i not in have]
        if new:
            OutboxDelivery.insert_many(new).execute()


def record_sent(
    ids: list[int], channel: str, label: str, required: list[str], t: float
) -> list[int]:
    """`channel` took these notices; those every required channel has taken are `sent`.
    Returns the ids that became sent."""
    done: list[int] = []
    need = len(set(required))
    with write_tx():
        _ensure(ids, channel, label)
        for part in _chunks(ids):
            OutboxDelivery.update(sent_at=t, attempts=OutboxDelivery.attempts + 1).where(
                (OutboxDelivery.channel == channel)
                & OutboxDelivery.item.in_(part)
                & OutboxDelivery.sent_at.is_null()
            ).execute()
            taken = (
                OutboxDelivery.select(OutboxDelivery.item)
                .where(
                    OutboxDelivery.item.in_(part)
                    & OutboxDelivery.sent_at.is_null(False)
                    & OutboxDelivery.channel.in_(required)
                )
                .group_by(OutboxDelivery.item)
                .having(fn.COUNT(OutboxDelivery.id) >= need)
            )
            finished = [int(r.item) for r in taken]
            if finished:
                OutboxItem.update(state=OutboxState.SENT, done_at=t).where(
                    OutboxItem.id.in_(finished) & (OutboxItem.state == OutboxState.QUEUED)
                ).execute()
                done.extend(finished)
    return done


def record_failed(
    attempts: dict[int, int], channel: str, label: str, cause: str, retry_at: dict[int, float]
) -> None:
    """`channel` did not take these notices (id → tries before this one): count the try,
    keep the cause, set when to retry."""
    ids = list(attempts)
    by_retry: dict[float, list[int]] = {}
    for i in ids:
        by_retry.setdefault(retry_at[i], []).append(i)
    with write_tx():
        _ensure(ids, channel, label)
        for when, group in by_retry.items():
            for part in _chunks(group):
                OutboxDelivery.update(
                    attempts=OutboxDelivery.attempts + 1, last_error=cause, next_try_at=when
                ).where(
                    (OutboxDelivery.channel == channel)
                    & OutboxDelivery.item.in_(part)
                    & OutboxDelivery.sent_at.is_null()
                ).execute()


def waiting() -> int:
    """Notices queued now (due or not)."""
    return int(OutboxItem.select().where(OutboxItem.state == OutboxState.QUEUED).count())


def prune(t: float, keep: float = KEEP_DONE) -> int:
    """Forget notices done more than `keep` seconds ago, with their deliveries."""
    old = OutboxItem.select(OutboxItem.id).where(
        (OutboxItem.state != OutboxState.QUEUED) & (OutboxItem.done_at < t - keep)
    )
    with write_tx():
        OutboxDelivery.delete().where(OutboxDelivery.item.in_(old)).execute()
        return int(
            OutboxItem.delete()
            .where((OutboxItem.state != OutboxState.QUEUED) & (OutboxItem.done_at < t - keep))
            .execute()
        )
