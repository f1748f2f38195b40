"""What the dashboard shows, as plain dicts: SQLite queries (read-only) and `list` rows shaped.

Every query here is a SELECT a person could run in sqlite3; this module never writes,
and the connection it opens refuses writes (`PRAGMA query_only`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import peewee as pw

from ..hive import budget, spend, waiting
from ..hive.agentconfig import risks_of
from ..hive.budget import Standing
from ..hive.db import (
    Agent,
    Approval,
    Decision,
    Message,
    Notification,
    OperatorQuestion,
    database,
    now,
    open_db,
)
from ..hive.names import MANAGER, OPERATOR, SYSTEM
from ..hive.vocab import AgentState, ApprovalStatus, CapSource, Period, QuestionStatus, TurnPhase
from ..hive.waiting import WAITING_OPERATOR
from ..hive.wire import AgentRow, TurnRow
from . import display

APPROVALS_SHOWN = 50
QUESTIONS_SHOWN = 50
NOTIFICATIONS_SHOWN = 30
DECISIONS_SHOWN = 5
INBOX_SHOWN = 200

RUNNING_TURN_STATES = frozenset(p for p in TurnPhase if p.busy)
CRASH_KINDS = frozenset({"container_crash"})
ALERT_KINDS = CRASH_KINDS | {"message_set_aside", "network_upgrade"}
"""Notifications shown in red: a crash, a message that can never be delivered, an agent
the upgrade left on the host's network."""


class NoDatabase(Exception):
    """The hive's database does not exist (yet): the coordinator creates it."""


def read_tx() -> Any:
    """One read transaction, so a page's queries see one consistent state."""
    return database.atomic()


def open_readonly(path: Path, wait: float = 30.0) -> pw.SqliteDatabase:
    """Open the hive's database for reading only, waiting up to `wait` s for it to appear."""
    deadline = time.monotonic() + wait
    try:
        while not path.exists():
            if time.monotonic() >= deadline:
                raise NoDatabase(
                    f"the hive database {path} does not exist: start the coordinator first "
                    "(systemctl start hive-coordinator)"
                )
            time.sleep(0.2)
        db = open_db(path, create=False)
        db.pragma("query_only", 1, permanent=True)
        Agent.select().count()  # fail now, with a sentence, rather than on the first page
    except (PermissionError, pw.OperationalError) as e:
        raise NoDatabase(
            f"cannot read the hive database {path} ({e}): hive-web needs read access to it and "
            "write access to its -shm file (group hive-admin on the state directory)"
        ) from None
    return db


# agents (rows of the admin `list` command) ---------------------------------------------


def turn_running(turn: TurnRow | None) -> bool:
    started = turn.get("started_at") if turn else None
    if turn is None or started is None:
        return False
    ended = turn.get("ended_at")
    return turn.get("state") in RUNNING_TURN_STATES and (ended is None or ended < started)


def agent_status(row: AgentRow) -> str:
    """running / failed / spawning / stopped / over_budget / waiting_operator / needs_login
    (the badge): the agent's state first; the rest only refine a running agent."""
    state = AgentState.of(row.get("state"))
    budget = row.get("budget")
    if state is AgentState.RUNNING and budget is not None and budget["over"]:
        return TurnPhase.OVER_BUDGET  # the gateway's word, not the harness's
    if state is AgentState.RUNNING and row.get("waiting_operator"):
        return WAITING_OPERATOR  # what the operator can act on comes before the rest
    if state is AgentState.RUNNING and row.get("needs_login"):
        return TurnPhase.NEEDS_LOGIN
    return state


def spend_view(row: AgentRow) -> dict[str, Any]:
    """What the agent's model requests cost (the gateway's metering): against the cap of the
    period nearest to it when it has one, else since it was made."""
    b = row.get("budget")
    if b is None:
        spent = float(row.get("spent_usd") or 0.0)
        return {"text": display.cost(spent), "over": False, "shown": bool(spent)}
    text = f"{display.cost(b['spent_usd'])} of {display.cost(b['cap_usd'] or 0.0)} {b['period']}"
    return {"text": text, "over": b["over"], "shown": True}


def turn_view(turn: TurnRow | None, agent_state: str = AgentState.RUNNING) -> dict[str, Any] | None:
    """The last turn the harness reported; for an agent that is not running it is history
    (`gone` names the agent's state, and nothing counts as running)."""
    if not turn:
        return None
    started, ended = turn.get("started_at"), turn.get("ended_at")
    total = int(turn.get("input_tokens") or 0) + int(turn.get("output_tokens") or 0)
    took = ended - started if started is not None and ended is not None else None
    alive = agent_state == AgentState.RUNNING
    return {
        "state": turn.get("state") or "idle",
        "running": alive and turn_running(turn),
        "gone": None if alive else agent_state,
        "tool": turn.get("tool"),
        "detail": turn.get("detail"),
        "started_at": started,
        "ended_at": ended,
        "started_clock": display.clock(started),
        "ended_clock": display.clock(ended),
        "took": display.duration(took) if took is not None and took >= 0 else None,
        "tokens": display.tokens(total),
        "input_tokens": int(turn.get("input_tokens") or 0),
        "output_tokens": int(turn.get("output_tokens") or 0),
        "cached_tokens": int(turn.get("cached_tokens") or 0),
        "cost": display.cost(float(turn.get("cost_usd") or 0.0)),
    }


def agent_view(row: AgentRow) -> dict[str, Any]:
    """One row of `list`, shaped for the agents table and the per-agent state row."""
    status = agent_status(row)
    transient = row.get("transient")
    turn = turn_view(row.get("turn"), AgentState.of(row.get("state")))
    running = status in (
        AgentState.RUNNING,
        TurnPhase.NEEDS_LOGIN,
        TurnPhase.OVER_BUDGET,
        WAITING_OPERATOR,
    )
    return {
        "name": row["name"],
        "is_manager": row["name"] == MANAGER,
        "status": status,
        "transient": transient,
        "busy": bool(transient) or status == AgentState.SPAWNING,
        "label": transient or status,
        "note": row.get("note"),
        "model": row.get("model") or "default",
        "model_override": bool(row.get("model_override")),
        "inbox": int(row.get("inbox") or 0),
        "needs_update": bool(row.get("needs_update")),
        "turn": turn,
        "spend": spend_view(row),
        "can_start": status in (AgentState.STOPPED, AgentState.FAILED) and not transient,
        "can_stop": running and not transient,
        "can_destroy": row["name"] != MANAGER and status != AgentState.SPAWNING and not transient,
        "can_cancel": bool(turn and turn["running"]),
    }


INDEX_AGENTS = 100
"""Agents the dashboard's index lists at most by default (HIVE_WEB_INDEX_AGENTS), those
needing attention first; the agents page lists them all."""
_CALM = (AgentState.RUNNING, AgentState.STOPPED)


def needs_attention(row: AgentRow) -> bool:
    """Something about this agent is for the operator to see first: it failed, waits on
    them, is at a cap or has no key, is being acted on, or runs an old container."""
    status = agent_status(row)
    busy = bool(row.get("transient")) or status == AgentState.SPAWNING
    return status not in _CALM or busy or bool(row.get("needs_update"))


def index_agents(
    rows: list[AgentRow], most: int = INDEX_AGENTS
) -> tuple[list[dict[str, Any]], int]:
    """The index's agents: those needing attention, then the rest in the list's order, at
    most `most` (only those are shaped for display); and how many agents there are in all."""
    flags = [needs_attention(r) for r in rows]
    first = [r for r, f in zip(rows, flags, strict=True) if f]
    rest = [r for r, f in zip(rows, flags, strict=True) if not f]
    return [agent_view(r) for r in (first + rest)[:most]], len(rows)


def stale(rows: list[AgentRow]) -> list[str]:
    """Agents whose container was built from another platform rev (↻ UPD4TE 4LL)."""
    return [r["name"] for r in rows if r.get("needs_update") and not r.get("transient")]


# approvals, questions, notifications (SQLite) ------------------------------------------


def approval_view(a: Approval) -> dict[str, Any]:
    return {
        "id": a.id,
        "agent": a.agent,
        "kind": a.kind,
        "spawn": a.kind == "spawn",
        "commit": (a.commit_ref or "")[:12],
        "status": a.status,
        "applying": a.status == ApprovalStatus.APPLYING,
        # the applied config moved since the diff was computed: approving is refused
        "stale": a.status == ApprovalStatus.STALE
        or (a.status == ApprovalStatus.PENDING and a.stale_at is not None),
        "base": (a.base_commit or "")[:12],
        "note": a.note,
        "requested_at": a.requested_at,
        "requested_clock": display.clock(a.requested_at),
        "resolved_at": a.resolved_at,
        "diff": display.diff_lines(a.diff),
        # computed from the bytes being approved, never from what the manager says of them
        "risks": risks_of(a.blob, a.agent) if a.status == ApprovalStatus.PENDING else [],
    }


def approvals() -> list[dict[str, Any]]:
    """Approvals waiting (pending or applying), oldest first; the header counts them all."""
    waiting = Approval.status.in_([s for s in ApprovalStatus if s.open])
    rows = Approval.select().where(waiting).order_by(Approval.id).limit(APPROVALS_SHOWN)
    return [approval_view(a) for a in rows]


def decisions() -> list[dict[str, Any]]:
    """The last few resolved approvals, newest first."""
    rows = (
        Approval.select()
        .where(Approval.status.in_([s for s in ApprovalStatus if not s.open]))
        .order_by(Approval.id.desc())
        .limit(DECISIONS_SHOWN)
    )
    return [approval_view(a) for a in rows]


def question_view(q: OperatorQuestion) -> dict[str, Any]:
    try:
        options = [str(o) for o in json.loads(q.options or "[]")]
    except ValueError:
        options = []
    return {
        "id": q.id,
        "asker": q.asker,
        "question": q.question,
        "options": options,
        "multi": bool(q.multi),
        "deadline": q.deadline,
        "asked_at": q.asked_at,
        "asked_clock": display.clock(q.asked_at),
    }


def questions() -> list[dict[str, Any]]:
    """Pending questions, oldest first."""
    rows = (
        OperatorQuestion.select()
        .where(OperatorQuestion.status == QuestionStatus.PENDING)
        .order_by(OperatorQuestion.id)
        .limit(QUESTIONS_SHOWN)
    )
    return [question_view(q) for q in rows]


def notifications() -> list[dict[str, Any]]:
    rows = Notification.select().order_by(Notification.id.desc()).limit(NOTIFICATIONS_SHOWN)
    return [
        {
            "id": n.id,
            "kind": n.kind,
            "agent": n.agent,
            "text": n.text,
            "alert": n.kind in ALERT_KINDS or "fail" in n.text,
            "created_at": n.created_at,
            "created_clock": display.clock(n.created_at),
        }
        for n in rows
    ]


def counts() -> dict[str, int]:
    """Pending approvals and questions (the header), and approvals still being applied."""
    pending = Approval.select().where(Approval.status == ApprovalStatus.PENDING).count()
    applying = Approval.select().where(Approval.status == ApprovalStatus.APPLYING).count()
    questions = (
        OperatorQuestion.select().where(OperatorQuestion.status == QuestionStatus.PENDING).count()
    )
    return {
        "approvals": pending,
        "questions": questions,
        "approvals_total": pending + applying,
        "questions_total": questions,
        "waiting": waiting.count(),
    }


# spending caps ---------------------------------------------------------------------------

HIVE_PERIODS = (Period.DAILY, Period.MONTHLY)
"""The hive's spend is shown for today and this month (a total of a hive has no cap)."""


def _usd(value: float | None) -> str | None:
    return None if value is None else display.cost(value)


def standing_view(s: Standing, agent: str) -> dict[str, Any]:
    """One period of an agent's budget: cap, where it comes from, spent, since, at cap."""
    return {
        "agent": agent,
        "period": str(s.period),
        "noun": s.period.noun,
        "cap": _usd(s.cap_usd),
        "cap_usd": s.cap_usd,
        "source": str(s.source),
        "mine": s.source is CapSource.OPERATOR,
        # what applies when the operator's cap is dropped: the config's, else the default
        "config": _usd(s.config_usd),
        "spent": display.cost(s.spent_usd),
        "since": s.since,
        "since_clock": display.clock(s.since),
        "over": s.over,
        "sentence": s.sentence(agent) if s.over else None,
    }


def budget_of(name: str) -> list[dict[str, Any]]:
    """Every period of `name`'s budget, capped or not (none for an agent that is gone)."""
    agent: Agent | None = Agent.get_or_none(Agent.name == name)
    if agent is None:
        return []
    rows = spend.rows_of([name]).get(name, {})
    return [standing_view(s, name) for s in spend.standing(agent, rows, now())]


def hive_spend(defaults: Mapping[Period, float | None]) -> list[dict[str, Any]]:
    """What the whole hive spent today and this month (every agent's metered requests),
    with the hive-wide default cap each agent gets where nothing else sets one."""
    t = now()
    out = []
    for period in HIVE_PERIODS:
        since = budget.period_start(period, t, 0.0)
        out.append(
            {
                "period": str(period),
                "noun": period.noun,
                "spent": display.cost(spend.spent_since(None, since)),
                "default": _usd(defaults.get(period)),
                "setting": period.setting,
            }
        )
    return out


def over_budget() -> list[dict[str, Any]]:
    """Running agents stopped at a cap (the waiting view), by name."""
    return [
        standing_view(s, name) | {"name": name} for name, s in sorted(waiting.over_budget().items())
    ]


# one agent's inbox ---------------------------------------------------------------------


def message_status(m: Message) -> str:
    """queued, set_aside, dropped or delivered (a leased message is still queued)."""
    if m.dropped_at is not None:
        return "dropped"
    if m.set_aside_at is not None:
        return "set_aside"
    return "queued" if m.delivered_at is None else "delivered"


def message_view(m: Message, agent: str) -> dict[str, Any]:
    event = display.helper_event(m.body) if m.sender == SYSTEM else None
    status = message_status(m)
    return {
        "id": m.id,
        "sender": m.sender,
        "recipient": m.recipient,
        "incoming": m.recipient == agent,
        "from_operator": m.sender == OPERATOR,
        "body": m.body,
        "event": event,
        "delivered": m.delivered_at is not None,
        "status": status,
        "reason": m.set_aside_reason if status == "set_aside" else m.drop_note,
        "can_drop": status in ("queued", "set_aside") and m.recipient == agent,
        "created_at": m.created_at,
        "created_clock": display.clock(m.created_at),
    }


def inbox(agent: str) -> list[dict[str, Any]]:
    """The agent's last messages in and out, oldest first."""
    rows = (
        Message.select()
        .where((Message.recipient == agent) | (Message.sender == agent))
        .order_by(Message.id.desc())
        .limit(INBOX_SHOWN)
    )
    return [message_view(m, agent) for m in reversed(list(rows))]


def agent_exists(name: str) -> bool:
    found: bool = Agent.select().where(Agent.name == name).exists()
    return found


def notification_max() -> int:
    last = Notification.select(Notification.id).order_by(Notification.id.desc()).first()
    return int(last.id) if last is not None else 0


def notifications_after(after: int) -> list[dict[str, Any]]:
    """Notifications newer than `after`, oldest first (browser notifications pop for these)."""
    rows = Notification.select().where(Notification.id > after).order_by(Notification.id)
    return [{"id": n.id, "kind": n.kind, "agent": n.agent, "text": n.text} for n in rows.limit(20)]


def question_is_multi(qid: int) -> bool:
    q = OperatorQuestion.get_or_none(OperatorQuestion.id == qid)
    return bool(q is not None and q.multi)


# the audit trail -------------------------------------------------------------------------

HISTORY_SHOWN = 300


def history() -> list[dict[str, Any]]:
    """The newest decisions, as the history page shows them."""
    rows = Decision.select().order_by(Decision.id.desc()).limit(HISTORY_SHOWN)
    return [
        {
            "id": d.id,
            "at": d.at,
            "at_clock": display.clock(d.at),
            "actor": d.actor,
            "channel": d.channel,
            "action": d.action,
            "target": d.target,
            "agent": d.target if d.target and "#" not in d.target else None,
            "outcome": d.outcome,
            "refused": d.outcome.startswith("refused"),
            "detail": ", ".join(
                f"{k}={v}" for k, v in sorted(json.loads(d.detail).items()) if k != "name"
            ),
        }
        for d in rows
    ]
