"""hivectl's human-readable output: one small table or line per reply kind."""

from __future__ import annotations

import time
from typing import Any


def _ago(ts: float | None) -> str:
    if not ts:
        return "-"
    secs = max(0, int(time.time() - ts))
    if secs < 60:
        return f"{secs}s ago"
    if secs < 3600:
        return f"{secs // 60}m ago"
    return f"{secs // 3600}h ago"


def agents_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no agents"
    head = ("NAME", "KIND", "STATE", "MODEL", "TURN", "INBOX", "NOTE")
    lines = [head]
    for r in rows:
        turn = r.get("turn") or {}
        turn_text = turn.get("state", "-") if turn else "-"
        if turn and turn.get("ended_at"):
            turn_text += f" ({_ago(turn['ended_at'])})"
        lines.append(
            (
                str(r["name"]),
                str(r.get("kind", "")),
                str(r.get("state", "")),
                str(r.get("model") or "default"),
                turn_text,
                str(r.get("inbox", 0)),
                str(r.get("note") or ""),
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    return "\n".join(
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip() for line in lines
    )


def reply(command: str, body: dict[str, Any]) -> str:
    if command in ("list", "status"):
        return agents_table(body.get("agents", []))
    if command == "spawn":
        agent = body.get("agent", {})
        return f"agent {agent.get('name')} created ({agent.get('state')})"
    if command == "send":
        return f"sent message #{body.get('id')}"
    if command == "kick":
        return f"woke {body.get('woken', 0)} receiver(s); {body.get('inbox', 0)} message(s) waiting"
    return "ok"
