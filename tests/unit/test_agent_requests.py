"""What the harness sends the Messages API: tools, system prompt, cache marks, and how it
reads answers and errors back (without a server: the SDK's own types and exceptions).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anthropic
import httpx2
import pytest
from anthropic.types import Message, TextBlock, ToolUseBlock, Usage
from hyperhive.agent import api, hivetools
from hyperhive.agent.conversation import text_block
from hyperhive.agent.prompt import system_blocks
from hyperhive.agent.settings import Settings
from hyperhive.agent.tools import CACHE, Toolbox
from hyperhive.agent.turn import with_cache_breakpoint
from hyperhive.hive.agentconfig import AgentConfig
from hyperhive.hive.pricing import Usage as TurnUsage


def settings(tmp_path: Path, kind: str = "agent", prompt: str = "") -> Settings:
    return Settings(
        agent="hm1nd" if kind == "manager" else "alice",
        socket=tmp_path / "hive.sock",
        state_dir=tmp_path,
        kind=kind,
        config=AgentConfig(system_prompt=prompt),
        agents_dir=Path("/agents") if kind == "manager" else None,
    )


def toolbox(manager: bool) -> Toolbox:
    return Toolbox(None, None, manager=manager, bash_timeout=1)  # type: ignore[arg-type]


def test_tools_end_with_the_cache_mark_and_only_the_manager_gets_its_own() -> None:
    agent = toolbox(False).definitions()
    manager = toolbox(True).definitions()
    assert [t["name"] for t in agent] == [
        "send",
        "recv",
        "ask_operator",
        "bash",
        "str_replace_based_edit_tool",
    ]
    assert {t["name"] for t in manager} - {t["name"] for t in agent} == {
        "request_apply_commit",
        "request_spawn",
        "request_init_config",
        "kill",
        "start",
        "restart",
    }
    for defs in (agent, manager):
        assert [t for t in defs if "cache_control" in t] == [defs[-1]]
        assert defs[-1]["cache_control"] == CACHE
    assert agent[-2] == {"type": "bash_20250124", "name": "bash"}
    assert agent[-1]["type"] == "text_editor_20250728"


def test_hive_tools_forward_only_their_schema_fields() -> None:
    send = hivetools.BY_NAME["send"]
    assert send.fields({"to": "bob", "body": "hi", "cmd": "kill", "extra": 1}) == {
        "to": "bob",
        "body": "hi",
    }
    schema = hivetools.BY_NAME["ask_operator"].definition()["input_schema"]
    assert set(schema["properties"]) == {"question", "options", "multi", "ttl_seconds"}
    assert schema["required"] == ["question"]
    assert (
        hivetools.BY_NAME["recv"].definition()["input_schema"]["properties"]["wait_seconds"][
            "maximum"
        ]
        == 180
    )


def test_the_system_prompt_is_the_role_then_the_config_marked_for_cache(tmp_path: Path) -> None:
    plain = system_blocks(settings(tmp_path))
    assert len(plain) == 1 and plain[0]["cache_control"] == CACHE
    assert "You are alice" in plain[0]["text"] and "{{" not in plain[0]["text"]
    extra = system_blocks(settings(tmp_path, prompt="You review SQL."))
    assert "cache_control" not in extra[0]
    assert extra[1]["text"].endswith("You review SQL.") and extra[1]["cache_control"] == CACHE
    manager = system_blocks(settings(tmp_path, kind="manager"))[0]["text"]
    assert "/agents/<name>/config/" in manager and "never rubber-stamp" in manager.lower()


def test_the_last_message_is_marked_on_a_copy() -> None:
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": [text_block("a")]},
        {"role": "assistant", "content": [text_block("b")]},
        {"role": "user", "content": [text_block("c"), text_block("d")]},
    ]
    marked = with_cache_breakpoint(messages)
    assert marked[-1]["content"][-1] == {**text_block("d"), "cache_control": CACHE}
    assert "cache_control" not in messages[-1]["content"][-1]  # the conversation is untouched
    assert marked[:2] == messages[:2]


def test_an_answer_becomes_request_params_and_usage() -> None:
    message = Message(
        id="msg_1",
        type="message",
        role="assistant",
        model="claude-sonnet-4-5",
        content=[
            TextBlock(type="text", text="let me look"),
            TextBlock(type="text", text=""),
            ToolUseBlock(type="tool_use", id="toolu_1", name="bash", input={"command": "ls"}),
        ],
        stop_reason="tool_use",
        stop_sequence=None,
        usage=Usage(
            input_tokens=100,
            output_tokens=50,
            cache_creation_input_tokens=1000,
            cache_read_input_tokens=2000,
        ),
    )
    response = api.to_response(message)
    assert response.content == [
        {"type": "text", "text": "let me look"},
        {"type": "tool_use", "id": "toolu_1", "name": "bash", "input": {"command": "ls"}},
    ]
    assert response.context_tokens == 3150
    usage = TurnUsage()
    response.count(usage, "claude-sonnet-4-5")
    assert (usage.input_tokens, usage.output_tokens, usage.cached_tokens) == (1100, 50, 2000)
    # $3 / $15 per million; cache writes 1.25x, reads 0.1x of input
    assert usage.cost_usd == pytest.approx((100 * 3 + 1000 * 3.75 + 2000 * 0.3 + 50 * 15) / 1e6)


def test_unknown_models_cost_nothing_rather_than_a_guess() -> None:
    usage = TurnUsage()
    usage.add("some-other-model", input=1000, output=1000, cache_write=0, cache_read=0)
    assert usage.cost_usd == 0 and usage.input_tokens == 1000


def _status_error(
    status: int, kind: str, message: str = "x", refusal: str | None = None
) -> anthropic.APIStatusError:
    request = httpx2.Request("POST", "http://api.invalid/v1/messages")
    response = httpx2.Response(status, request=request, headers={"retry-after": "7"})
    error: dict[str, str] = {"type": kind, "message": message}
    if refusal is not None:
        error["hive_refusal"] = refusal
    body = {"type": "error", "error": error}
    return anthropic.Anthropic(api_key="k")._make_status_error(
        message, body=body, response=response
    )


@pytest.mark.parametrize(
    ("status", "kind", "expected"),
    [
        (529, "overloaded_error", "transient"),
        (429, "rate_limit_error", "transient"),
        (500, "api_error", "transient"),
        (503, "api_error", "transient"),
        (200, "overloaded_error", "transient"),  # an error event mid-stream
        (401, "authentication_error", "auth"),
        (400, "invalid_request_error", "fatal"),
        (403, "permission_error", "fatal"),
    ],
)
def test_errors_are_classified_for_retry(status: int, kind: str, expected: str) -> None:
    assert api.classify(_status_error(status, kind)) == expected


@pytest.mark.parametrize(
    ("status", "kind", "refusal", "expected"),
    [
        (403, "permission_error", "over_budget", "over_budget"),  # the turn waits for a raise
        (401, "authentication_error", "no_key", "auth"),  # needs_login
        (429, "rate_limit_error", "busy", "transient"),
        (502, "api_error", "upstream_down", "transient"),
        (503, "overloaded_error", "unavailable", "transient"),
        (404, "not_found_error", "not_forwarded", "fatal"),
    ],
)
def test_the_gateways_own_refusals_are_classified_by_their_name(
    status: int, kind: str, refusal: str, expected: str
) -> None:
    error = _status_error(status, kind, "a sentence", refusal)
    assert api.classify(error) == expected
    assert api.describe(error) == f"{kind} ({status}): a sentence"


def test_a_too_long_prompt_asks_for_compaction_and_retry_after_is_honoured() -> None:
    too_long = _status_error(400, "invalid_request_error", "prompt is too long: 210000 tokens")
    assert api.classify(too_long) == "too_long"
    overloaded = _status_error(529, "overloaded_error", "Overloaded")
    assert api.describe(overloaded) == "overloaded_error (529): Overloaded"
    client = api.Api(Path("/nonexistent/api.sock"), retry_base=1, retry_cap=5, max_retries=0)
    try:
        assert client.backoff(1, overloaded) == 5  # retry-after 7, capped
        assert 0.8 * 4 <= client.backoff(3, RuntimeError()) <= 4
    finally:
        client.close()
    assert api.classify(httpx2.ReadError("reset")) == "transient"
