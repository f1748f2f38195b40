"""The `waiting` reply: everything that waits on the operator (`hive.waiting`'s queries),
shaped as the wire rows clients already read."""

from __future__ import annotations

from typing import TypedDict

from ..hive import waiting as queries
from ..hive.wire import ApprovalRow, BudgetRow, QuestionRow
from .approvals import approval_dict
from .questions import question_dict


class Crashed(TypedDict):
    name: str
    note: str | None
    since: float


class OverBudget(TypedDict):
    name: str
    budget: BudgetRow
    sentence: str


class Waiting(TypedDict):
    approvals: list[ApprovalRow]
    questions: list[QuestionRow]
    crashed: list[Crashed]
    over_budget: list[OverBudget]
    count: int


def waiting() -> Waiting:
    approvals = [approval_dict(a) for a in queries.pending_approvals()]
    questions = [question_dict(q) for q in queries.open_questions()]
    crashed = [
        Crashed(name=a.name, note=a.note, since=a.updated_at) for a in queries.crashed_agents()
    ]
    over = [
        OverBudget(name=name, budget=s.to_dict(), sentence=s.sentence(name))
        for name, s in sorted(queries.over_budget().items())
    ]
    return Waiting(
        approvals=approvals,
        questions=questions,
        crashed=crashed,
        over_budget=over,
        count=len(approvals) + len(questions) + len(crashed) + len(over),
    )
