"""The outbox: notices for the operator's channels, queued by their producers (the coordinator,
the crash watcher) inside the transaction that records what they tell of; hive-notify sends them.

A producer only inserts a row and rings hive-notify's doorbell (`Paths.notify_doorbell`,
with `inbox.ring_doorbell`) after the commit; it never waits for a channel. One item is one
row (`key` is unique), so a second insert of the same notice is a no-op. Every text here is
plain text, cut to a size any channel takes.
"""

from __future__ import annotations

import json
import time

from .db import Approval, OperatorQuestion, OutboxItem, now
from .events import BudgetReached, ContainerCrash, HelperEvent
from .vocab import ApprovalKind, Notice, Period

DEADLINE_NOTICE = 60.0
"""Seconds before a question's deadline that its reminder is due."""

BODY_LINES = 8
LINE_CHARS = 160
TITLE_CHARS = 120


def _line(text: str, limit: int = LINE_CHARS) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _lines(text: str, limit: int = BODY_LINES) -> str:
    lines = [_line(x) for x in text.splitlines() if x.strip()]
    if len(lines) > limit:
        lines = [*lines[:limit], f"… ({len(lines) - limit} more lines)"]
    return "\n".join(lines)


def enqueue(
    kind: Notice,
    key: str,
    title: str,
    body: str = "",
    *,
    agent: str | None = None,
    item_id: int | None = None,
    due_at: float | None = None,
) -> None:
    """Queue one notice; call it inside the producer's write transaction. A key queued
    before is left as it is (one item, one notice)."""
    t = now()
    OutboxItem.insert(
        kind=str(kind),
        key=key,
        agent=agent,
        item_id=item_id,
        title=_line(title, TITLE_CHARS),
        body=body,
        created_at=t,
        due_at=t if due_at is None else due_at,
    ).on_conflict_ignore().execute()


# the producers' notices ----------------------------------------------------------------


def diff_summary(diff: str | None) -> str:
    """A few lines of what a diff changes: the counts, then its first added and removed lines
    (comments and blank lines are counted, not shown)."""
    added: list[str] = []
    removed: list[str] = []
    for line in (diff or "").splitlines():
        if line.startswith(("+++", "---", "@@")) or not line.startswith(("+", "-")):
            continue
        (added if line.startswith("+") else removed).append(line)

    def shown(lines: list[str], most: int) -> list[str]:
        kept = [x for x in lines if x[1:].strip() and not x[1:].lstrip().startswith("#")]
        out = [_line(x) for x in kept[:most]]
        return [*out, "…"] if len(kept) > most else out

    head = f"{len(added)} line{'s' if len(added) != 1 else ''} added, {len(removed)} removed"
    return "\n".join([head, *shown(added, 4), *shown(removed, 2)])


def approval_waiting(a: Approval) -> None:
    """An approval is waiting for the operator: its agent, kind and a summary of its diff."""
    if a.kind == ApprovalKind.SPAWN:
        title = f"hm1nd asks to spawn {a.agent} (approval #{a.id})"
    else:
        title = f"{a.agent}: a config change waits for approval #{a.id}"
    commit = f"commit {(a.commit_ref or '')[:12]}\n" if a.commit_ref else ""
    enqueue(
        Notice.APPROVAL_WAITING,
        f"{Notice.APPROVAL_WAITING}:{a.id}",
        title,
        commit + diff_summary(a.diff),
        agent=a.agent,
        item_id=int(a.id),
    )


def _clock(t: float) -> str:
    return time.strftime("%H:%M UTC", time.gmtime(t))


def _question_body(q: OperatorQuestion) -> str:
    options = [str(o) for o in json.loads(q.options or "[]")]
    parts = [_lines(q.question, 6)]
    if options:
        joiner = " / "
        parts.append(("choose any of: " if q.multi else "options: ") + _line(joiner.join(options)))
    if q.deadline is not None:
        parts.append(f"answer by {_clock(q.deadline)}")
    return "\n".join(parts)


def question_asked(q: OperatorQuestion) -> None:
    """A question for the operator (its text and options), and, when its deadline is more
    than a minute away, a reminder due one minute before it."""
    enqueue(
        Notice.QUESTION_ASKED,
        f"{Notice.QUESTION_ASKED}:{q.id}",
        f"{q.asker} asks (question #{q.id}): {_line(q.question, 80)}",
        _question_body(q),
        agent=q.asker,
        item_id=int(q.id),
    )
    if q.deadline is not None and q.deadline - DEADLINE_NOTICE > q.asked_at:
        enqueue(
            Notice.QUESTION_DEADLINE,
            f"{Notice.QUESTION_DEADLINE}:{q.id}",
            f"one minute left for {q.asker}'s question #{q.id}",
            _question_body(q),
            agent=q.asker,
            item_id=int(q.id),
            due_at=q.deadline - DEADLINE_NOTICE,
        )


def container_crash(agent: str, note: str, key: str) -> None:
    """A container crashed: the crash note."""
    enqueue(
        Notice.CONTAINER_CRASH,
        f"{Notice.CONTAINER_CRASH}:{key}",
        f"{agent} crashed",
        _lines(note),
        agent=agent,
    )


def _noun(period: str) -> str:
    try:
        return Period(period).noun
    except ValueError:
        return f"this {period}"


def budget_reached(
    agent: str,
    spent_usd: float,
    cap_usd: float,
    period: str,
    since: str,
    event_id: int | None = None,
) -> None:
    """An agent reached its spending cap for `period` (daily, monthly) starting `since`: it
    starts no turn until the operator raises or resets the cap. One notice per agent,
    period and `since`; its action link acts on the budget_reached event `event_id`."""
    enqueue(
        Notice.BUDGET_REACHED,
        f"{Notice.BUDGET_REACHED}:{agent}:{period}:{since}",
        f"{agent} reached its {period} spending cap",
        f"spent ${spent_usd:.2f} of ${cap_usd:.2f} {_noun(period)} (since {since}); it starts "
        "no turn until the cap is raised or reset",
        agent=agent,
        item_id=event_id,
    )


def from_helper_event(event: HelperEvent, event_id: int) -> None:
    """The notice a helper event carries, if any (inside the event's own transaction)."""
    if isinstance(event, ContainerCrash):
        container_crash(event.agent, event.note, str(event_id))
    elif isinstance(event, BudgetReached):
        budget_reached(
            event.agent, event.spent_usd, event.cap_usd, event.period, event.since, event_id
        )
