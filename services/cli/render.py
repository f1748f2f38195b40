"""hivectl's human-readable output: one small table or line per reply kind."""

from __future__ import annotations

import time
from typing import Any

from ..hive.vocab import AgentState, ApprovalStatus, QuestionStatus, TurnPhase
from ..hive.waiting import WAITING_OPERATOR
from ..hive.wire import AgentRow, ApprovalRow, QuestionRow, agent_rows


def _ago(ts: float | None) -> str:
    if not ts:
        return "-"
    secs = max(0, int(time.time() - ts))
    if secs < 60:
        return f"{secs}s ago"
    if secs < 3600:
        return f"{secs // 60}m ago"
    return f"{secs // 3600}h ago"


def table(head: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    lines = [head, *rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    return "\n".join(
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip() for line in lines
    )


def agents_table(rows: list[AgentRow]) -> str:
    if not rows:
        return "no agents"
    out: list[tuple[str, ...]] = []
    for r in rows:
        turn = r["turn"]
        ended = turn["ended_at"] if turn else None
        turn_text = turn["state"] if turn else "-"
        if ended:
            turn_text += f" ({_ago(ended)})"
        if r["state"] != AgentState.RUNNING and turn:  # the agent's state comes first
            turn_text = "-" + (f" (last {_ago(ended)})" if ended else "")
        state = str(r.get("transient") or r.get("state", ""))
        budget = r.get("budget")
        if state == AgentState.RUNNING and budget is not None and budget["over"]:
            state = TurnPhase.OVER_BUDGET
        elif state == AgentState.RUNNING and r.get("waiting_operator"):
            state = WAITING_OPERATOR
        if r.get("needs_update"):
            state += " (needs update)"
        out.append(
            (
                str(r["name"]),
                str(r.get("kind", "")),
                state,
                str(r.get("model") or "default"),
                turn_text,
                str(r.get("inbox", 0)),
                str(r.get("note") or "").splitlines()[0] if r.get("note") else "",
            )
        )
    return table(("NAME", "KIND", "STATE", "MODEL", "TURN", "INBOX", "NOTE"), out)


def approvals_text(rows: list[ApprovalRow]) -> str:
    if not rows:
        return "no approvals waiting"
    parts = []
    for a in rows:
        ref = (a.get("commit_ref") or "template")[:12]
        head = f"#{a['id']}  {a['kind']}  {a['agent']}  {ref}  {a['status']}"
        if a.get("stale") and a["status"] == ApprovalStatus.PENDING:
            head += "  STALE: the applied config changed since this diff was made"
        if a.get("note"):
            head += f"  ({a['note']})"
        for risk in a.get("risks") or []:
            head += f"\n  ⚠ RISK: {risk}"
        diff = a["diff"]
        parts.append(head + ("\n" + diff.rstrip() if diff else ""))
    return "\n\n".join(parts)


def questions_text(rows: list[QuestionRow]) -> str:
    if not rows:
        return "no questions waiting"
    parts = []
    for q in rows:
        line = f"#{q['id']}  from {q['asker']}  [{q['status']}]"
        deadline = q["deadline"]
        if deadline and q["status"] == QuestionStatus.PENDING:
            left = max(0, int(deadline - time.time()))
            line += f"  ◷ {left // 60:02d}:{left % 60:02d}"
        line += f"\n  {q['question']}"
        if q.get("options"):
            kind = "choose any of" if q.get("multi") else "choose one of"
            line += f"\n  {kind}: " + " | ".join(q["options"])
        if q.get("answer") is not None:
            line += f"\n  answer: {q['answer']}"
        parts.append(line)
    return "\n\n".join(parts)


def _size(n: int) -> str:
    return f"{n} B" if n < 1024 else f"{n / 1024:.1f} KiB"


def inbox_text(body: dict[str, Any]) -> str:
    rows = body.get("messages", [])
    out: list[tuple[str, ...]] = [
        (
            str(m["id"]),
            str(m["sender"]),
            _size(int(m["size"])),
            _ago(m.get("created_at")),
            str(m["status"]),
            str(m.get("reason") or m.get("preview") or ""),
        )
        for m in rows
    ]
    text = (
        table(("ID", "FROM", "SIZE", "AGE", "STATUS", "PREVIEW / REASON"), out)
        if out
        else f"no undelivered messages for {body.get('agent')}"
    )
    if body.get("truncated"):
        text += f"\n({body.get('omitted')} older message(s) not shown)"
    return text


def waiting_text(w: dict[str, Any]) -> str:
    if not w.get("count"):
        return "nothing waits on you"
    parts = [f"{w['count']} thing(s) wait on you"]
    if w.get("approvals"):
        parts.append("approvals:\n" + approvals_text(w["approvals"]))
    if w.get("questions"):
        parts.append("questions (soonest deadline first):\n" + questions_text(w["questions"]))
    if w.get("crashed"):
        lines = [f"  {c['name']}: {c.get('note') or 'failed'}" for c in w["crashed"]]
        parts.append("crashed, not restarted (hivectl start NAME):\n" + "\n".join(lines))
    if w.get("over_budget"):
        lines = [f"  {o['sentence']}" for o in w["over_budget"]]
        parts.append("at a spending cap (hivectl budget NAME):\n" + "\n".join(lines))
    return "\n\n".join(parts)


def _usd(value: float | None) -> str:
    return "-" if value is None else f"${value:,.2f}"


def budget_text(body: dict[str, Any]) -> str:
    rows: list[tuple[str, ...]] = [
        (
            str(b["period"]),
            _usd(b["cap_usd"]),
            str(b["source"]),
            _usd(b["spent_usd"]),
            time.strftime("%Y-%m-%d %H:%M", time.localtime(b["since"])),
            "AT CAP" if b["over"] else "",
        )
        for b in body["periods"]
    ]
    text = table(("PERIOD", "CAP", "FROM", "SPENT", "COUNTED SINCE", ""), rows)
    return text + (f"\n\n{body['detail']}" if body.get("detail") else "")


def history_text(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "nothing decided yet"
    out: list[tuple[str, ...]] = [
        (
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(d["at"])),
            str(d["action"]),
            str(d["target"]),
            str(d["channel"]),
            str(d["actor"]),
            str(d["outcome"])[:80],
        )
        for d in rows
    ]
    return table(("WHEN", "ACTION", "TARGET", "CHANNEL", "WHO", "OUTCOME"), out)


def reply(command: str, body: dict[str, Any]) -> str:
    if command == "model":  # the model only, whether it was asked for or set
        row = (body.get("agents") or [{}])[0]
        model = row.get("model") if "agents" in body else body.get("model")
        override = " (the operator's override)" if row.get("model_override") else ""
        return f"{model or 'the default model'}{override}"
    if command == "waiting":
        return waiting_text(body["waiting"])
    if command == "history":
        return history_text(body["decisions"])
    if command == "budget":
        return budget_text(body)
    if command == "inbox":
        return inbox_text(body)
    if command == "drop":
        m = body["message"]
        return f"message #{m['id']} to {m['recipient']}: {m['status']}"
    if "agents" in body:
        return agents_table(agent_rows(body))
    if command in ("pending", "questions"):
        key = "approvals" if command == "pending" else "questions"
        text = (approvals_text if key == "approvals" else questions_text)(body.get(key, []))
        if body.get("truncated"):
            text += f"\n\n({body.get('omitted')} older {key} not shown: the reply is full)"
        return text
    if "approval" in body:
        a = body["approval"]
        return f"approval #{a['id']}: {a['status']}" + (f" ({a['note']})" if a.get("note") else "")
    if "question" in body:
        q = body["question"]
        return f"question #{q['id']}: {q['status']} ({q['answer']})"
    if command == "send":
        return f"sent message #{body.get('id')}"
    if command == "kick":
        return f"woke {body.get('woken', 0)} receiver(s); {body.get('inbox', 0)} message(s) waiting"
    if command == "cancel":
        return "cancel sent" if body.get("woken") else "cancel recorded (no turn was watching)"
    if command == "login":
        return (
            f"open this link within {body.get('valid_seconds', 120):.0f} s; it works once:\n"
            f"  {body.get('url')}"
        )
    if command == "passwd":
        return (
            "dashboard password set" if body.get("password_set") else "dashboard password removed"
        )
    if command == "logout-all":
        return f"ended {body.get('revoked', 0)} dashboard session(s)"
    if command == "destroy":
        return f"{body.get('destroyed')} destroyed"
    if "agent" in body:
        a = body["agent"]
        return f"{a['name']}: {a.get('transient') or a['state']}" + (
            f" ({a['note']})" if a.get("note") else ""
        )
    return "ok"
