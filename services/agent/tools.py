"""The toolbox a turn offers the model: definitions (cache-marked) and dispatch by name.

Owns which tools exist for this agent (the hive's own, bash, the text editor) and how a
tool_use becomes a tool_result; it reports each tool through the turn state.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..hive.log import DEBUG, log
from . import editor, hivetools
from .bus import Bus
from .cancel import CancelToken
from .shell import BashSession
from .turnstate import TurnReporter

BASH = "bash"
EDITOR = "str_replace_based_edit_tool"
BASH_TOOL: dict[str, Any] = {"type": "bash_20250124", "name": BASH}
EDITOR_TOOL: dict[str, Any] = {
    "type": "text_editor_20250728",
    "name": EDITOR,
    "max_characters": editor.MAX_VIEW_CHARS,
}
CACHE = {"type": "ephemeral"}


@dataclass(frozen=True)
class ToolResult:
    content: str
    is_error: bool = False

    def block(self, tool_use_id: str) -> dict[str, Any]:
        block: dict[str, Any] = {
            "type": "tool_result",
            "tool_use_id": tool_use_id,
            "content": self.content or "(empty)",
        }
        if self.is_error:
            block["is_error"] = True
        return block


def summary(name: str, inp: dict[str, Any]) -> str:
    """One line of what a tool call does, for the turn state and the journal."""
    if name == BASH:
        return "restart" if inp.get("restart") else str(inp.get("command", ""))[:300]
    if name == EDITOR:
        return f"{inp.get('command', '?')} {inp.get('path', '')}"
    shown = {k: v for k, v in inp.items() if k != "body"}
    return json.dumps(shown, ensure_ascii=False)[:300]


class Toolbox:
    def __init__(self, bus: Bus, shell: BashSession, *, manager: bool, bash_timeout: float) -> None:
        self.bus = bus
        self.shell = shell
        self.bash_timeout = bash_timeout
        self.hive = {t.name: t for t in hivetools.tools_for(manager)}

    def definitions(self) -> list[dict[str, Any]]:
        """Every tool, the last one carrying the cache breakpoint that covers them all."""
        tools = [t.definition() for t in self.hive.values()]
        tools += [dict(BASH_TOOL), dict(EDITOR_TOOL)]
        tools[-1] = {**tools[-1], "cache_control": CACHE}
        return tools

    def run(
        self, name: str, inp: object, cancel: CancelToken, reporter: TurnReporter
    ) -> ToolResult:
        if not isinstance(inp, dict):
            return ToolResult(f"the input of {name} must be a JSON object", True)
        detail = summary(name, inp)
        if name == "recv":
            reporter.waiting(f"recv up to {inp.get('wait_seconds', 0)} s")
        else:
            reporter.tool(name, detail)
        log(f"tool {name}: {detail}", kind="turn", agent=self.bus.agent, tool=name, priority=DEBUG)
        if name == BASH:
            return self._bash(inp, cancel)
        if name == EDITOR:
            try:
                return ToolResult(editor.run(inp))
            except editor.EditorError as e:
                return ToolResult(str(e), True)
        tool = self.hive.get(name)
        if tool is None:
            return ToolResult(f"there is no tool named {name!r} here", True)
        text, is_error = hivetools.run(self.bus, tool, inp, cancel)
        return ToolResult(text, is_error)

    def _bash(self, inp: dict[str, Any], cancel: CancelToken) -> ToolResult:
        if inp.get("restart"):
            self.shell.restart()
            return ToolResult("the bash session was restarted")
        command = inp.get("command")
        if not isinstance(command, str) or not command.strip():
            return ToolResult("give a 'command' to run (or 'restart': true)", True)
        result = self.shell.run(command, self.bash_timeout, cancel)
        text, is_error = result.for_model(self.bash_timeout)
        return ToolResult(text, is_error)
