"""Operator questions: asked by an agent, resolved exactly once by an answer, a cancel or the TTL.

Every resolution is one conditional UPDATE (status = 'pending' → final); the losers of a
race are told the question is already resolved. Deadlines live in SQLite, so a question
whose deadline passed while the coordinator was down expires when it starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

from ..hive import log as hlog
from ..hive import outbox
from ..hive.db import Notification, OperatorQuestion, now, write_tx
from ..hive.events import CANCELLED, EXPIRED, OperatorAnswered
from ..hive.names import MANAGER
from ..hive.protocol import Refusal
from ..hive.vocab import Code, QuestionStatus
from ..hive.wire import QuestionRow
from .effects import Effects

MAX_TTL = 7 * 24 * 3600


class QuestionError(Refusal):
    pass


def question_dict(q: OperatorQuestion) -> QuestionRow:
    return {
        "id": q.id,
        "asker": q.asker,
        "question": q.question,
        "options": json.loads(q.options),
        "multi": q.multi,
        "deadline": q.deadline,
        "status": q.status,
        "answer": q.answer,
        "asked_at": q.asked_at,
        "resolved_at": q.resolved_at,
        "decided_by": q.decided_by,
    }


def listing(include_resolved: bool = False, limit: int = 200) -> list[QuestionRow]:
    query = OperatorQuestion.select().order_by(OperatorQuestion.id.desc()).limit(limit)
    if not include_resolved:
        query = query.where(OperatorQuestion.status == QuestionStatus.PENDING)
    return [question_dict(q) for q in query]


class Questions:
    def __init__(self, effects: Effects) -> None:
        self.effects = effects
        self._timers: dict[int, asyncio.TimerHandle] = {}

    def ask(
        self,
        asker: str,
        question: str,
        options: list[str],
        multi: bool,
        ttl_seconds: float | None,
    ) -> int:
        if multi and not options:
            raise QuestionError("a multi-choice question needs options", code=Code.INVALID)
        if len(set(options)) != len(options):
            raise QuestionError("options must be distinct", code=Code.INVALID)
        deadline = now() + ttl_seconds if ttl_seconds is not None else None
        with write_tx():
            q = OperatorQuestion.create(
                asker=asker,
                question=question,
                options=json.dumps(options),
                multi=multi,
                deadline=deadline,
            )
            Notification.create(kind="question", agent=asker, text=f"question #{q.id} from {asker}")
            outbox.question_asked(q)
        hlog.log(
            f"{asker} asks the operator (#{q.id})",
            kind="question_asked",
            agent=asker,
            question=q.id,
        )
        if deadline is not None:
            self._schedule(q.id, deadline)
        self.effects.changed("questions", "notifications")
        return int(q.id)

    def _schedule(self, qid: int, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        delay = max(0.0, deadline - now())
        self._timers[qid] = loop.call_later(delay, self._expire, qid)

    def _expire(self, qid: int) -> None:
        self._timers.pop(qid, None)
        with contextlib.suppress(QuestionError):  # answered or cancelled first: nothing to do
            self.resolve(qid, QuestionStatus.EXPIRED, EXPIRED, None)

    def answer(self, qid: int, answer: str | list[str], by: str) -> QuestionRow:
        q = self._get(qid)
        options = json.loads(q.options)
        if isinstance(answer, list):
            if not q.multi:
                raise QuestionError(
                    f"question #{qid} takes one answer, not a list", code=Code.INVALID
                )
            unknown = [a for a in answer if a not in options]
            if unknown or not answer:
                raise QuestionError(
                    f"answer must be among the options of question #{qid}", code=Code.INVALID
                )
            text = ", ".join(answer)
        else:
            if options and not q.multi and answer not in options:
                raise QuestionError(
                    f"answer must be one of the options of question #{qid}", code=Code.INVALID
                )
            text = answer
        return self.resolve(qid, QuestionStatus.ANSWERED, text, by)

    def cancel(self, qid: int, by: str) -> QuestionRow:
        return self.resolve(qid, QuestionStatus.CANCELLED, CANCELLED, by)

    def resolve(self, qid: int, status: str, answer: str, by: str | None) -> QuestionRow:
        """Resolve a pending question exactly once (by operator `by`, None for the TTL);
        refuse if it was resolved before."""
        with write_tx():
            changed = (
                OperatorQuestion.update(
                    status=status, answer=answer, resolved_at=now(), decided_by=by
                )
                .where(
                    (OperatorQuestion.id == qid)
                    & (OperatorQuestion.status == QuestionStatus.PENDING)
                )
                .execute()
            )
            q = self._get(qid)
        if not changed:
            raise QuestionError(f"question #{qid} is already resolved ({q.status})")
        timer = self._timers.pop(qid, None)
        if timer is not None:
            timer.cancel()
        hlog.log(
            f"question #{qid}: {status}" + (f", by {by}" if by else ""),
            kind="question_resolved",
            agent=q.asker,
            question=qid,
            operator=by,
        )
        event = OperatorAnswered(id=qid, question=q.question, answer=answer)
        self.effects.notify(event)
        if q.asker != MANAGER:
            self.effects.deliver_system(q.asker, event.to_json())
        self.effects.changed("questions", "notifications")
        return question_dict(q)

    def _get(self, qid: int) -> OperatorQuestion:
        q: OperatorQuestion | None = OperatorQuestion.get_or_none(OperatorQuestion.id == qid)
        if q is None:
            raise QuestionError(f"no question #{qid}: see `hivectl questions`", code=Code.NOT_FOUND)
        return q

    def recover(self) -> None:
        """Arm the deadlines of pending questions; those already past expire now."""
        for q in OperatorQuestion.select().where(
            (OperatorQuestion.status == QuestionStatus.PENDING)
            & OperatorQuestion.deadline.is_null(False)
        ):
            if q.deadline is not None:
                self._schedule(q.id, q.deadline)

    def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
