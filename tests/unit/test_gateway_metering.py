"""The gateway's meter reads usage from the bytes as they pass, however they are cut."""

from __future__ import annotations

import json

import pytest
from hyperhive.gateway.metering import (
    MAX_EVENT,
    JsonMeter,
    StreamMeter,
    meter_for,
)
from hyperhive.hive.pricing import cost


def sse(name: str, data: dict[str, object], newline: str = "\n") -> bytes:
    return f"event: {name}{newline}data: {json.dumps(data)}{newline}{newline}".encode()


START = {
    "type": "message_start",
    "message": {
        "model": "claude-sonnet-4-5",
        "usage": {
            "input_tokens": 12,
            "cache_creation_input_tokens": 300,
            "cache_read_input_tokens": 4000,
            "output_tokens": 1,
        },
    },
}
DELTA = {
    "type": "message_delta",
    "delta": {"stop_reason": "end_turn"},
    "usage": {"output_tokens": 57},
}
TEXT = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hi"}}


def stream(newline: str = "\n") -> bytes:
    return b"".join(
        [
            sse("message_start", START, newline),
            sse("ping", {"type": "ping"}, newline),
            sse("content_block_delta", TEXT, newline),
            sse("message_delta", DELTA, newline),
            sse("message_stop", {"type": "message_stop"}, newline),
        ]
    )


@pytest.mark.parametrize("piece", [1, 2, 7, 64, 100_000])
@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_a_stream_cut_anywhere_gives_the_same_usage(piece: int, newline: str) -> None:
    data = stream(newline)
    meter = StreamMeter()
    for i in range(0, len(data), piece):
        meter.feed(data[i : i + piece])
    u = meter.usage
    assert (u.model, u.input_tokens, u.cache_write_tokens, u.cache_read_tokens) == (
        "claude-sonnet-4-5",
        12,
        300,
        4000,
    )
    assert u.output_tokens == 57 and u.seen and u.complete
    assert u.cost_usd == cost(
        "claude-sonnet-4-5", input=12, output=57, cache_write=300, cache_read=4000
    )


def test_a_stream_cut_off_keeps_what_it_saw_and_says_it_is_incomplete() -> None:
    meter = StreamMeter()
    meter.feed(sse("message_start", START) + sse("content_block_delta", TEXT))
    assert meter.usage.seen and not meter.usage.complete
    assert meter.usage.output_tokens == 1 and meter.usage.input_tokens == 12


def test_later_usage_fields_replace_earlier_ones_and_junk_is_ignored() -> None:
    meter = StreamMeter()
    meter.feed(sse("message_start", START))
    meter.feed(sse("message_delta", {"usage": {"input_tokens": 15, "output_tokens": -3}}))
    meter.feed(b"event: message_delta\ndata: {not json\n\n")
    meter.feed(
        sse("message_delta", {"usage": {"output_tokens": True, "cache_read_input_tokens": 9}})
    )
    u = meter.usage
    assert (u.input_tokens, u.output_tokens, u.cache_read_tokens) == (15, 1, 9)


def test_an_event_too_large_to_keep_is_passed_over_and_the_next_ones_still_read() -> None:
    meter = StreamMeter()
    meter.feed(sse("message_start", START))
    big = {"type": "content_block_delta", "delta": {"text": "x" * (MAX_EVENT + 10)}}
    data = sse("content_block_delta", big)
    for i in range(0, len(data), 65536):
        meter.feed(data[i : i + 65536])
    meter.feed(sse("message_delta", DELTA) + sse("message_stop", {}))
    assert meter.usage.output_tokens == 57 and meter.usage.complete


def test_a_plain_json_message_is_metered_at_its_end() -> None:
    body = json.dumps(
        {
            "type": "message",
            "model": "claude-haiku-4-5",
            "usage": {
                "input_tokens": 3,
                "output_tokens": 4,
                "cache_creation_input_tokens": 5,
                "cache_read_input_tokens": 6,
            },
        }
    ).encode()
    meter = meter_for("application/json")
    assert isinstance(meter, JsonMeter)
    for i in range(0, len(body), 10):
        meter.feed(body[i : i + 10])
    meter.finish()
    u = meter.usage
    assert (u.input_tokens, u.output_tokens, u.cache_write_tokens, u.cache_read_tokens) == (
        3,
        4,
        5,
        6,
    )
    assert u.model == "claude-haiku-4-5" and u.complete
    assert isinstance(meter_for("text/event-stream; charset=utf-8"), StreamMeter)


def test_an_error_body_is_not_usage() -> None:
    meter = JsonMeter()
    meter.feed(b'{"type": "error", "error": {"type": "overloaded_error"}}')
    meter.finish()
    assert not meter.usage.seen
