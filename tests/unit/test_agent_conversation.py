"""The harness's persisted conversation: turns, merging, notes, crash-safe files, size."""

from __future__ import annotations

import json
from pathlib import Path

from hyperhive.agent.conversation import Conversation, render_inbox_message, text_block

MSG = {"id": 7, "sender": "operator", "recipient": "alice", "body": "hi", "created_at": 0.0}


def test_a_claimed_message_is_saved_as_the_open_turn(tmp_path: Path) -> None:
    conv = Conversation.load(tmp_path)
    conv.open_turn(MSG)
    again = Conversation.load(tmp_path)
    assert again.turn_open and again.pending == [MSG]
    assert again.messages == [{"role": "user", "content": [text_block(render_inbox_message(MSG))]}]
    again.append_assistant([text_block("hello")])
    again.close_turn()
    final = Conversation.load(tmp_path)
    assert not final.turn_open
    assert [m["role"] for m in final.messages] == ["user", "assistant"]


def test_the_inbox_message_reads_with_sender_id_and_time() -> None:
    text = render_inbox_message(MSG)
    assert text.startswith("[message from operator, inbox #7, 1970-01-01 00:00:00 UTC]")
    assert text.endswith("\nhi")
    event = render_inbox_message({**MSG, "sender": "system", "body": '{"event":"killed"}'})
    assert event.startswith("[helper event from the hive, inbox #7")


def test_user_content_merges_into_a_trailing_user_message(tmp_path: Path) -> None:
    conv = Conversation(tmp_path / "c.json")
    conv.append_user([text_block("a")])
    conv.append_user([text_block("b")])
    assert conv.messages == [{"role": "user", "content": [text_block("a"), text_block("b")]}]


def test_a_note_answers_open_tool_uses_before_it_is_said(tmp_path: Path) -> None:
    conv = Conversation(tmp_path / "c.json")
    conv.append_user([text_block("go")])
    use = {"type": "tool_use", "id": "toolu_1", "name": "bash", "input": {"command": "x"}}
    conv.append_assistant([text_block("running"), use])
    conv.note("[cancelled]")
    assert conv.messages[2] == {
        "role": "user",
        "content": [
            {
                "type": "tool_result",
                "tool_use_id": "toolu_1",
                "content": "[cancelled]",
                "is_error": True,
            }
        ],
    }
    assert conv.messages[3] == {"role": "assistant", "content": [text_block("[cancelled]")]}


def test_a_note_after_plain_text_joins_that_reply(tmp_path: Path) -> None:
    conv = Conversation(tmp_path / "c.json")
    conv.append_user([text_block("go")])
    conv.append_assistant([text_block("partial")])
    conv.note("[failed]")
    assert conv.messages[-1]["content"] == [text_block("partial"), text_block("[failed]")]
    assert len(conv.messages) == 2


def test_an_unreadable_file_is_moved_aside_not_lost(tmp_path: Path) -> None:
    (tmp_path / "conversation.json").write_text("{ not json")
    conv = Conversation.load(tmp_path)
    assert conv.messages == [] and not conv.turn_open
    aside = list(tmp_path.glob("conversation.json.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_text() == "{ not json"


def test_saving_never_leaves_a_partial_file(tmp_path: Path) -> None:
    conv = Conversation.load(tmp_path)
    conv.open_turn(MSG)
    assert [p.name for p in tmp_path.iterdir()] == ["conversation.json"]
    assert json.loads((tmp_path / "conversation.json").read_text())["version"] == 1


def test_the_size_estimate_starts_from_the_api_measurement(tmp_path: Path) -> None:
    conv = Conversation(tmp_path / "c.json")
    conv.append_user([text_block("x" * 400)])
    unmeasured = conv.estimate_tokens(overhead_chars=4000)
    assert unmeasured == (conv.chars() + 4000) // 4
    conv.measured(10_000)
    conv.append_assistant([text_block("y" * 800)])
    assert 10_200 <= conv.estimate_tokens() <= 10_260


def test_a_redelivered_message_is_not_a_new_turn(tmp_path: Path) -> None:
    conv = Conversation.load(tmp_path)
    assert conv.open_turn(MSG) is True
    conv.close_turn()
    again = Conversation.load(tmp_path)  # as after a crash before the ack reached the hive
    assert again.open_turn(MSG) is False
    assert not again.turn_open
