"""The shapes that cross a socket: every reply row the dashboard, hivectl and the harness read.

One `TypedDict` per row, written by the coordinator and read by its clients, so mypy checks
both sides of the wire. docs/sockets.md describes the same fields for people.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict, cast


class TurnRow(TypedDict):
    """The last `set_turn_state` of an agent's harness; its tokens and cost are the gateway's
    metering of that turn (`usage` rows with its `turn` id), not the harness's own count."""

    state: str
    tool: str | None
    detail: str | None
    started_at: float | None
    ended_at: float | None
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    cost_usd: float
    updated_at: float
    turn: str | None


class BudgetRow(TypedDict):
    """One period of an agent's budget (`hive.budget.Standing.to_dict`)."""

    period: str
    cap_usd: float | None
    source: str
    spent_usd: float
    since: float
    over: bool
    config_usd: float | None
    operator_usd: float | None


class AgentRecord(TypedDict):
    """An agent as the agents table and its counts give it."""

    name: str
    kind: str
    state: str
    note: str | None
    model: str | None
    applied_sha: str | None
    inbox: int
    set_aside: int
    created_at: float
    turn: TurnRow | None
    spent_usd: float
    """What the agent's model requests cost since it was made, metered by the gateway."""
    budget: BudgetRow | None
    """The period of its budget nearest its cap (one at it first); None: no cap at all."""


class AgentRow(AgentRecord):
    """A row of `list` / `agent_status`: the record plus what only the coordinator knows."""

    model_override: str | None
    transient: str | None
    listening: int
    needs_update: bool
    needs_login: bool
    waiting_operator: bool


class ApprovalRow(TypedDict):
    id: int
    agent: str
    kind: str
    commit_ref: str | None
    status: str
    stale: bool
    base_commit: str | None
    note: str | None
    diff: str | None
    risks: list[str]
    """What the operator must read before approving: computed from the config it carries."""
    requested_at: float
    resolved_at: float | None
    decided_by: str | None


class QuestionRow(TypedDict):
    id: int
    asker: str
    question: str
    options: list[str]
    multi: bool
    deadline: float | None
    status: str
    answer: str | None
    asked_at: float
    resolved_at: float | None
    decided_by: str | None


class MessageRow(TypedDict):
    """A message as `recv` hands it out."""

    id: int
    sender: str
    recipient: str
    body: str
    created_at: float


class InboxRow(TypedDict):
    """A message as `inbox` and `drop` show it to the operator (a preview, not the body)."""

    id: int
    sender: str
    recipient: str
    size: int
    preview: str
    created_at: float
    status: str
    reason: str | None
    delivered_at: float | None
    set_aside_at: float | None
    dropped_at: float | None


class DecisionRow(TypedDict):
    """One entry of the audit trail (`history`)."""

    id: int
    at: float
    actor: str
    channel: str
    action: str
    target: str
    detail: dict[str, Any]
    outcome: str


class SessionRow(TypedDict):
    id: int
    kind: str
    opened_by: str
    client: str
    created_at: float
    last_seen: float
    expires_at: float
    idle_seconds: float


# reading replies (clients) -------------------------------------------------------------------
# The coordinator writes these shapes (mypy checks it); a client of the admin socket reads
# them back from JSON through these, the one place each shape is taken on trust.


def agent_rows(reply: Mapping[str, Any]) -> list[AgentRow]:
    return cast(list[AgentRow], list(reply["agents"]))


def message_row(value: object) -> MessageRow | None:
    """The message of a `recv` reply, or None when it holds none (or not an object)."""
    return cast(MessageRow, value) if isinstance(value, dict) else None
