"""The hive's own tools: one per socket command the agent may use, as the model sees them.

Each tool forwards only the fields its schema names to the command of the same name on
the agent's socket; the hive validates them and its refusal goes back to the model as
the tool's error. Manager-only tools are offered to the manager only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..hive.client import Refused, Unreachable
from .bus import MAX_RECV_WAIT, BadReply, Bus, BusDown, interrupt
from .cancel import CancelToken

_NAME = {"type": "string", "description": "an agent's name (a-z, 0-9, '-'; starts with a letter)"}


@dataclass(frozen=True)
class HiveTool:
    name: str
    description: str
    properties: dict[str, Any]
    required: tuple[str, ...]
    manager_only: bool = False

    def definition(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "input_schema": {
                "type": "object",
                "properties": self.properties,
                "required": list(self.required),
                "additionalProperties": False,
            },
        }

    def fields(self, inp: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in inp.items() if k in self.properties and v is not None}


TOOLS = (
    HiveTool(
        "send",
        "Send a message to another agent of the hive, or to the human operator with "
        "to='operator'. This is the only way anyone sees what you say: your plain replies "
        "are not delivered to anyone. Returns the message id.",
        {
            "to": {"type": "string", "description": "an agent's name, or 'operator'"},
            "body": {"type": "string", "description": "the message text (at most 256 KiB)"},
        },
        ("to", "body"),
    ),
    HiveTool(
        "recv",
        "Wait for the next message in your inbox, for at most wait_seconds (≤ 180), and "
        "return it (or null if none came). Use it when you need a reply to continue this "
        "turn; otherwise end your turn and the reply starts a new one.",
        {
            "wait_seconds": {
                "type": "number",
                "minimum": 0,
                "maximum": MAX_RECV_WAIT,
                "description": "how long to wait, 0 to 180 seconds",
            }
        },
        ("wait_seconds",),
    ),
    HiveTool(
        "ask_operator",
        "Put a question to the human operator on the dashboard. Returns the question's id "
        "at once; the answer arrives later in your inbox as an operator_answered event "
        "(answer '[cancelled]' or '[expired]' if the operator cancelled it or the ttl ran out).",
        {
            "question": {"type": "string"},
            "options": {
                "type": "array",
                "items": {"type": "string"},
                "description": "choices to offer; omit for a free-text answer",
            },
            "multi": {"type": "boolean", "description": "whether several options may be chosen"},
            "ttl_seconds": {
                "type": "integer",
                "minimum": 1,
                "description": "expire the question after this many seconds",
            },
        },
        ("question",),
    ),
    HiveTool(
        "request_apply_commit",
        "Ask the operator to approve a commit of an agent's proposed config repo "
        "(/agents/<agent>/config). Returns the approval id; the outcome arrives as an "
        "approval_resolved event, then a rebuilt event once the change is applied.",
        {"agent": _NAME, "commit_ref": {"type": "string", "description": "the commit sha"}},
        ("agent", "commit_ref"),
        manager_only=True,
    ),
    HiveTool(
        "request_spawn",
        "Ask the operator to approve creating a new agent. Returns the approval id; the "
        "outcome arrives as approval_resolved and then a spawned event.",
        {"name": _NAME},
        ("name",),
        manager_only=True,
    ),
    HiveTool(
        "request_init_config",
        "Create the proposed config repo of an agent with the default agent.toml (if it has "
        "none yet) so you can shape it before a spawn. Returns its path and commit.",
        {"name": _NAME},
        ("name",),
        manager_only=True,
    ),
    HiveTool(
        "kill",
        "Stop an agent's container at once (the operator sees a killed event).",
        {"agent": _NAME},
        ("agent",),
        manager_only=True,
    ),
    HiveTool("start", "Start a stopped agent.", {"agent": _NAME}, ("agent",), manager_only=True),
    HiveTool(
        "restart",
        "Restart an agent's container (its conversation and /state survive).",
        {"agent": _NAME},
        ("agent",),
        manager_only=True,
    ),
)

BY_NAME = {t.name: t for t in TOOLS}


def tools_for(manager: bool) -> list[HiveTool]:
    return [t for t in TOOLS if manager or not t.manager_only]


def _reply_text(reply: dict[str, Any]) -> str:
    shown = {k: v for k, v in reply.items() if k not in ("ok", "version")}
    return json.dumps(shown, ensure_ascii=False)


def run(bus: Bus, tool: HiveTool, inp: dict[str, Any], cancel: CancelToken) -> tuple[str, bool]:
    """Call the hive; return (tool_result text, is_error)."""
    fields = tool.fields(inp)
    try:
        if tool.name == "recv":
            return _recv(bus, fields, cancel)
        return _reply_text(bus.call(tool.name, repeatable=False, **fields)), False
    except Refused as e:
        return f"the hive refused {tool.name}: {e}", True
    except BusDown as e:
        return f"{tool.name} failed: {e}", True
    except BadReply as e:
        return f"{tool.name} failed: the hive's reply could not be read ({e})", True


def _recv(bus: Bus, fields: dict[str, Any], cancel: CancelToken) -> tuple[str, bool]:
    """recv on a connection of its own, so a cancel can interrupt the wait."""
    wait = fields.get("wait_seconds", 0)
    client = bus.open()
    try:
        with cancel.on_cancel(lambda: interrupt(client)):
            try:
                reply = client.call("recv", wait_seconds=wait)
            except (Unreachable, OSError):
                cancel.check()
                raise BusDown("the hive closed the connection during recv") from None
    finally:
        client.close()
    # Even when cancelled now: a claimed message must reach the conversation, not vanish.
    return _reply_text(reply), False
