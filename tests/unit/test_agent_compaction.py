"""Compaction: what is summarised, what is kept word for word, what is archived."""

from __future__ import annotations

import json
from pathlib import Path

from hyperhive.agent.compaction import CONTINUE, DROPPED, SUMMARY_REQUEST, compact, drop_oldest
from hyperhive.agent.conversation import Conversation, Message, text_block


def history(tmp_path: Path) -> Conversation:
    conv = Conversation(tmp_path / "conversation.json")
    conv.append_user([text_block("remember apples")])
    conv.append_assistant([text_block("noted")])
    return conv


def test_a_new_plain_message_is_kept_and_the_rest_summarised(tmp_path: Path) -> None:
    conv = history(tmp_path)
    conv.append_user([text_block("and pears")])
    asked: list[list[Message]] = []

    def summarise(messages: list[Message]) -> str:
        asked.append(messages)
        return "the operator likes apples"

    assert compact(conv, summarise)
    (request,) = asked
    assert [m["role"] for m in request] == ["user", "assistant", "user"]
    assert request[-1]["content"] == [text_block(SUMMARY_REQUEST)]
    (only,) = conv.messages
    head, kept = only["content"]
    assert "compaction #1" in head["text"] and "the operator likes apples" in head["text"]
    assert CONTINUE not in head["text"]
    assert kept == text_block("and pears")
    archived = json.loads((tmp_path / "conversation-archive.jsonl").read_text())
    assert archived["messages"][0]["content"] == [text_block("remember apples")]
    assert Conversation.load(tmp_path).compactions == 1


def test_mid_turn_everything_is_summarised_and_the_turn_continues(tmp_path: Path) -> None:
    conv = Conversation(tmp_path / "conversation.json")
    conv.append_user([text_block("list the files")])
    conv.append_assistant([{"type": "tool_use", "id": "t1", "name": "bash", "input": {}}])
    conv.append_user([{"type": "tool_result", "tool_use_id": "t1", "content": "a b"}])
    asked: list[list[Message]] = []

    def summarise(messages: list[Message]) -> str:
        asked.append(messages)
        return "listed: a and b"

    assert compact(conv, summarise)
    last = asked[0][-1]["content"]
    assert last[0]["type"] == "tool_result" and last[-1] == text_block(SUMMARY_REQUEST)
    (only,) = conv.messages
    assert only["content"] == [text_block(only["content"][0]["text"])]
    assert only["content"][0]["text"].endswith(CONTINUE)


def test_nothing_to_compact_calls_no_model(tmp_path: Path) -> None:
    conv = Conversation(tmp_path / "conversation.json")
    conv.append_user([text_block("first message")])

    def summarise(messages: list[Message]) -> str:
        raise AssertionError("no summary for a single message")

    assert not compact(conv, summarise)
    assert conv.messages == [{"role": "user", "content": [text_block("first message")]}]


def test_when_even_the_summary_is_too_long_the_oldest_half_is_archived(tmp_path: Path) -> None:
    conv = Conversation(tmp_path / "conversation.json")
    for n in range(4):
        conv.append_user([text_block(f"question {n}")])
        conv.append_assistant([text_block(f"answer {n}")])
    assert drop_oldest(conv)
    assert conv.messages[0]["content"] == [text_block(DROPPED), text_block("question 2")]
    assert [m["role"] for m in conv.messages] == ["user", "assistant", "user", "assistant"]
    archived = json.loads((tmp_path / "conversation-archive.jsonl").read_text())
    assert len(archived["messages"]) == 4
