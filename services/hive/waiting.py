"""What waits on the operator, as queries on the shared database: pending approvals, open
questions (soonest deadline first), agents that crashed and were not restarted, agents
stopped at a spending cap. The
coordinator's `waiting` command, the dashboard's waiting view and its count, and each agent's
`waiting_operator` flag all read these, so they never disagree.
"""

from __future__ import annotations

import peewee as pw

from . import spend
from .budget import Standing
from .db import Agent, Approval, OperatorQuestion
from .vocab import AgentState, ApprovalStatus, QuestionStatus

WAITING_OPERATOR = "waiting_operator"
"""The badge of a running agent that something waits on the operator for."""


def pending_approvals() -> pw.ModelSelect[Approval]:
    return Approval.select().where(Approval.status == ApprovalStatus.PENDING).order_by(Approval.id)


def open_questions() -> pw.ModelSelect[OperatorQuestion]:
    return (
        OperatorQuestion.select()
        .where(OperatorQuestion.status == QuestionStatus.PENDING)
        .order_by(
            OperatorQuestion.deadline.is_null(), OperatorQuestion.deadline, OperatorQuestion.id
        )
    )


def crashed_agents() -> pw.ModelSelect[Agent]:
    return Agent.select().where(Agent.state == AgentState.FAILED).order_by(Agent.name)


def over_budget() -> dict[str, Standing]:
    """Running agents at a cap, with the period that stops them (a stopped one waits on
    nobody)."""
    over = spend.over_budget()
    if not over:
        return over
    running = Agent.select(Agent.name).where(
        (Agent.state == AgentState.RUNNING) & Agent.name.in_(list(over))
    )
    return {a.name: over[a.name] for a in running}


def count() -> int:
    queries = (pending_approvals(), open_questions(), crashed_agents())
    return sum(int(q.count()) for q in queries) + len(over_budget())


def agents_waiting() -> set[str]:
    """Agents something waits on the operator for: an approval about it, or its question."""
    about = Approval.select(Approval.agent).where(Approval.status == ApprovalStatus.PENDING)
    asked = OperatorQuestion.select(OperatorQuestion.asker).where(
        OperatorQuestion.status == QuestionStatus.PENDING
    )
    return {a.agent for a in about} | {q.asker for q in asked} | set(over_budget())
