"""The agent's conversation, persisted in its state dir: messages, the open turn, the summary.

Every change is written atomically (temp file, fsync, rename) before the harness acts on
it, so a crash at any point leaves the last good copy, and an inbox message claimed for a
turn stays `pending` until that turn ends. Nothing here talks to the API or the hive.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..hive.log import WARNING, log
from ..hive.names import SYSTEM
from ..hive.wire import MessageRow

CONVERSATION_FILE = "conversation.json"
ARCHIVE_FILE = "conversation-archive.jsonl"
CHARS_PER_TOKEN = 4

Block = dict[str, Any]
Message = dict[str, Any]


def write_atomic(path: Path, data: str) -> None:
    """Replace `path` with `data` so a reader sees the old or the new file, never a mix."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def text_block(text: str) -> Block:
    return {"type": "text", "text": text}


def render_inbox_message(msg: MessageRow) -> str:
    """How an inbox message reads to the model: who, when, which id, then the body."""
    created = msg.get("created_at")
    when = (
        datetime.fromtimestamp(created, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        if isinstance(created, int | float)
        else "unknown time"
    )
    sender = str(msg.get("sender", "?"))
    what = "helper event from the hive" if sender == SYSTEM else f"message from {sender}"
    body = str(msg.get("body", "")) or "(empty)"
    return f"[{what}, inbox #{msg.get('id')}, {when}]\n{body}"


SEEN_KEPT = 500


@dataclass
class Conversation:
    path: Path
    messages: list[Message] = field(default_factory=list)
    pending: list[dict[str, Any]] = field(default_factory=list)
    """Inbox messages of the open turn; non-empty means a turn is open (re-run after a crash)."""
    seen: list[int] = field(default_factory=list)
    """Ids of the latest inbox messages taken into a turn (a redelivery is not a new turn)."""
    summary: str | None = None
    compactions: int = 0
    context_tokens: int = 0
    """Input + output tokens the API counted for the last request of this conversation."""
    context_chars: int = 0
    """Characters of `messages` when `context_tokens` was measured."""

    # persistence ---------------------------------------------------------------------
    @classmethod
    def load(cls, state_dir: Path, agent: str | None = None) -> Conversation:
        path = state_dir / CONVERSATION_FILE
        conv = cls(path)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return conv
        except (OSError, ValueError) as e:
            aside = path.with_name(f"{path.name}.corrupt-{int(time.time())}")
            with contextlib.suppress(OSError):
                os.replace(path, aside)
            log(
                f"conversation file unreadable ({e}); moved aside to {aside.name}, starting fresh",
                kind="turn",
                agent=agent,
                priority=WARNING,
            )
            return conv
        if isinstance(raw, dict):
            conv.messages = [m for m in raw.get("messages", []) if _is_message(m)]
            conv.pending = [m for m in raw.get("pending", []) if isinstance(m, dict)]
            conv.seen = [i for i in raw.get("seen", []) if isinstance(i, int)]
            summary = raw.get("summary")
            conv.summary = summary if isinstance(summary, str) else None
            conv.compactions = int(raw.get("compactions", 0) or 0)
            conv.context_tokens = int(raw.get("context_tokens", 0) or 0)
            conv.context_chars = int(raw.get("context_chars", 0) or 0)
        return conv

    def save(self) -> None:
        data = {
            "version": 1,
            "messages": self.messages,
            "pending": self.pending,
            "seen": self.seen,
            "summary": self.summary,
            "compactions": self.compactions,
            "context_tokens": self.context_tokens,
            "context_chars": self.context_chars,
        }
        write_atomic(self.path, json.dumps(data, ensure_ascii=False, indent=None))

    def archive(self, messages: list[Message]) -> None:
        """Append messages dropped by a compaction to the archive (for the operator)."""
        line = json.dumps({"archived_at": time.time(), "messages": messages}, ensure_ascii=False)
        with open(self.path.with_name(ARCHIVE_FILE), "a", encoding="utf-8") as f:
            f.write(line + "\n")

    # turns ----------------------------------------------------------------------------
    @property
    def turn_open(self) -> bool:
        return bool(self.pending)

    def open_turn(self, inbox_message: MessageRow) -> bool:
        """Record a received inbox message as the start of a turn, durably.

        False (and nothing recorded) if it was taken in before: a redelivery after a crash.
        If it cannot be saved, nothing is recorded in memory either, and the error raised.
        """
        mid = inbox_message.get("id")
        if isinstance(mid, int) and mid in self.seen:
            return False
        before = (self.seen, list(self.pending), [dict(m) for m in self.messages])
        if isinstance(mid, int):
            self.seen = [*self.seen, mid][-SEEN_KEPT:]
        self.pending.append(dict(inbox_message))  # kept as it came, in the saved state
        self.append_user([text_block(render_inbox_message(inbox_message))])
        try:
            self.save()
        except BaseException:
            self.seen, self.pending, self.messages = before
            raise
        return True

    def close_turn(self) -> None:
        self.pending = []
        self.save()

    # messages -------------------------------------------------------------------------
    def append_user(self, blocks: list[Block]) -> None:
        """Add user content, merged into a trailing user message (the API wants turns)."""
        if self.messages and self.messages[-1]["role"] == "user":
            content = self.messages[-1]["content"]
            if isinstance(content, str):
                content = [text_block(content)]
            self.messages[-1]["content"] = content + blocks
        else:
            self.messages.append({"role": "user", "content": list(blocks)})

    def append_assistant(self, blocks: list[Block]) -> None:
        if not blocks:
            blocks = [text_block("(no reply)")]
        self.messages.append({"role": "assistant", "content": list(blocks)})

    def unanswered_tool_uses(self) -> list[Block]:
        """tool_use blocks of a trailing assistant message (a turn stopped mid-tool)."""
        if not self.messages or self.messages[-1]["role"] != "assistant":
            return []
        content = self.messages[-1]["content"]
        if not isinstance(content, list):
            return []
        return [b for b in content if isinstance(b, dict) and b.get("type") == "tool_use"]

    def answer_tool_uses(self, text: str) -> None:
        """Give every unanswered tool_use the same error result (cancel, crash, failure)."""
        uses = self.unanswered_tool_uses()
        if uses:
            self.append_user(
                [
                    {
                        "type": "tool_result",
                        "tool_use_id": b["id"],
                        "content": text,
                        "is_error": True,
                    }
                    for b in uses
                ]
            )

    def note(self, text: str) -> None:
        """Record, as the assistant, that something ended the turn (cancel, failure)."""
        self.answer_tool_uses(text)
        if self.messages and self.messages[-1]["role"] == "assistant":
            self.messages[-1]["content"] = [*self.messages[-1]["content"], text_block(text)]
        else:
            self.append_assistant([text_block(text)])

    # size ---------------------------------------------------------------------------
    def chars(self) -> int:
        return len(json.dumps(self.messages, ensure_ascii=False))

    def measured(self, tokens: int) -> None:
        """The API's count of the last request's context; the base of `estimate_tokens`."""
        self.context_tokens = tokens
        self.context_chars = self.chars()

    def estimate_tokens(self, overhead_chars: int = 0) -> int:
        """Tokens the next request will use: the last measurement plus what was added since."""
        added = max(0, self.chars() - self.context_chars)
        if self.context_tokens:
            return self.context_tokens + added // CHARS_PER_TOKEN
        return (self.chars() + overhead_chars) // CHARS_PER_TOKEN


def _is_message(m: object) -> bool:
    return (
        isinstance(m, dict)
        and m.get("role") in ("user", "assistant")
        and isinstance(m.get("content"), list | str)
    )
