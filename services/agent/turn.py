"""One turn: model requests and tool calls until the model ends its turn.

The model is read from the hive at the start of every turn. Every step is saved to the
conversation before the next one starts, so a turn cut short by a crash is resumed
where it stopped. Cancel, auth and API failures propagate to the loop as exceptions.
"""

from __future__ import annotations

import copy
from typing import Any

from ..hive.client import Refused
from ..hive.log import WARNING, log
from . import compaction
from .api import Api, ApiFailure, ContextTooLong, Response
from .bus import Bus, BusDown
from .cancel import Cancelled, CancelToken
from .conversation import Conversation, Message, text_block
from .settings import Settings
from .tools import CACHE, Toolbox, ToolResult
from .turnstate import TurnReporter

MODEL_FILE = "hyperhive-model"
MAX_REQUESTS = 200
"""Model requests in one turn before the harness ends it (a runaway tool loop)."""
SUMMARY_MAX_TOKENS = 4096
CUT_OFF = "[Your reply was cut off by the output limit; continue exactly where it stopped.]"
CANCELLED_TOOL = "[cancelled by the operator before this tool finished]"
INTERRUPTED_TOOL = (
    "[the harness restarted while this tool ran; its outcome is unknown: check before repeating it]"
)


def with_cache_breakpoint(messages: list[Message]) -> list[Message]:
    """A copy of `messages` whose last block is marked, so the prefix is read from cache."""
    if not messages:
        return messages
    out = list(messages)
    last = copy.deepcopy(out[-1])
    content = last["content"]
    if isinstance(content, str):
        content = [text_block(content)]
    if content and content[-1].get("type") in ("text", "tool_result"):
        content[-1] = {**content[-1], "cache_control": CACHE}
    last["content"] = content
    out[-1] = last
    return out


class TurnRunner:
    def __init__(
        self,
        settings: Settings,
        bus: Bus,
        conversation: Conversation,
        toolbox: Toolbox,
        reporter: TurnReporter,
        system: list[dict[str, Any]],
    ) -> None:
        self.settings = settings
        self.bus = bus
        self.conv = conversation
        self.toolbox = toolbox
        self.reporter = reporter
        self.system = system
        self.tools = toolbox.definitions()

    # the model ---------------------------------------------------------------------------
    def current_model(self) -> str:
        """The operator's override (from the hive, else its file in /state), or the default."""
        try:
            model = self.bus.call("get_model").get("model")
        except (Refused, BusDown):
            try:
                model = (self.settings.state_dir / MODEL_FILE).read_text().strip() or None
            except OSError:
                model = None
        return model if isinstance(model, str) and model else self.settings.default_model

    def params(self, model: str, messages: list[Message], **extra: Any) -> dict[str, Any]:
        return {
            "model": model,
            "max_tokens": self.settings.max_tokens,
            "system": self.system,
            "tools": self.tools,
            "messages": with_cache_breakpoint(messages),
            **extra,
        }

    def request(self, api: Api, params: dict[str, Any], cancel: CancelToken) -> Response:
        model = str(params["model"])

        def on_attempt(n: int) -> None:
            if n > 1:
                self.reporter.thinking(f"attempt {n}")

        def on_retry(detail: str) -> None:
            self.reporter.retrying(detail)
            log(detail, kind="turn", agent=self.settings.agent, priority=WARNING)

        response = api.request(
            params, cancel, on_attempt=on_attempt, on_retry=on_retry, turn=self.reporter.turn_id
        )
        response.count(self.reporter.usage, model)
        return response

    # compaction ---------------------------------------------------------------------------
    def overhead_chars(self) -> int:
        return len(str(self.system)) + len(str(self.tools))

    def compact(self, api: Api, model: str, cancel: CancelToken) -> bool:
        def summarise(messages: list[Message]) -> str:
            self.reporter.thinking("compacting the conversation")
            params = self.params(
                model, messages, tool_choice={"type": "none"}, max_tokens=SUMMARY_MAX_TOKENS
            )
            return self.request(api, params, cancel).text()

        try:
            done = compaction.compact(self.conv, summarise)
        except ContextTooLong as e:
            if not compaction.drop_oldest(self.conv):
                raise ApiFailure(f"the conversation is too long even to summarise: {e}") from None
            done = compaction.compact(self.conv, summarise)
        if done:
            log(
                f"conversation compacted (#{self.conv.compactions})",
                kind="turn",
                agent=self.settings.agent,
            )
        return done

    # the turn -----------------------------------------------------------------------------
    def resume(self) -> bool:
        """Make a turn cut short by a restart resumable; False if it had in fact finished."""
        if self.conv.unanswered_tool_uses():
            self.conv.answer_tool_uses(INTERRUPTED_TOOL)
            self.conv.save()
            return True
        if self.conv.messages and self.conv.messages[-1]["role"] == "assistant":
            return False
        return bool(self.conv.messages)

    def run(self, api: Api, cancel: CancelToken) -> str:
        """Run the open turn to its end; return the model's last text (may be empty)."""
        if not self.resume():
            self.conv.close_turn()
            return ""
        model = self.current_model()
        self.reporter.thinking(f"model {model}")
        compacted = False  # at most once a turn (and once more if the API says too long)
        compacted_for_length = False
        for _ in range(MAX_REQUESTS):
            estimate = self.conv.estimate_tokens(self.overhead_chars())
            if not compacted and estimate > self.settings.compact_at_tokens:
                compacted = self.compact(api, model, cancel)
                self.reporter.thinking(f"model {model}")
            try:
                response = self.request(api, self.params(model, self.conv.messages), cancel)
            except ContextTooLong as e:
                if compacted_for_length or not self.compact(api, model, cancel):
                    raise ApiFailure(str(e)) from None
                compacted = compacted_for_length = True
                continue
            self.conv.measured(
                response.input_tokens + response.cache_write_tokens + response.cache_read_tokens
            )
            self.conv.append_assistant(response.content)
            uses = response.tool_uses()
            if not uses:
                if response.stop_reason == "max_tokens":
                    self.conv.append_user([text_block(CUT_OFF)])
                    self.conv.save()
                    continue
                self.conv.close_turn()
                return response.text()
            self.conv.save()
            self.run_tools(uses, cancel)
            cancel.check()
            self.reporter.thinking(f"model {model}")
        raise ApiFailure(f"the turn made {MAX_REQUESTS} model requests without ending")

    def run_tools(self, uses: list[dict[str, Any]], cancel: CancelToken) -> None:
        """Run each tool_use in order and save all their results as one user message."""
        results = []
        for use in uses:
            name = str(use.get("name"))
            inp = use.get("input")
            if cancel.cancelled:
                result = ToolResult(CANCELLED_TOOL, True)
            else:
                try:
                    result = self.toolbox.run(name, inp, cancel, self.reporter)
                except Cancelled:
                    result = ToolResult(CANCELLED_TOOL, True)
                except Exception as e:  # a tool's own failure is the model's to read
                    result = ToolResult(f"the {name} tool failed: {e!r}", True)
            results.append(result.block(str(use.get("id"))))
        self.conv.append_user(results)
        self.conv.save()
