"""The gateway's parts alone: where its key comes from, which headers cross it, its refusals,
and how its accounts follow the agents table."""

from __future__ import annotations

import json
from pathlib import Path

import httpx2
import pytest
from hyperhive.gateway import refusals, upstream
from hyperhive.gateway.roster import AgentRow, Roster
from hyperhive.gateway.settings import (
    DEFAULT_BASE_URL,
    PROCESS_HINT,
    UNIT_HINT,
    SettingsError,
    from_env,
)
from hyperhive.hive.vocab import Code, GatewayRefusal


def test_the_key_comes_from_the_credential_first_then_the_environment(tmp_path: Path) -> None:
    assert from_env({}).key is None and from_env({}).base_url == DEFAULT_BASE_URL
    env = {"ANTHROPIC_API_KEY": " sk-env \n", "ANTHROPIC_BASE_URL": "http://127.0.0.1:9"}
    s = from_env(env)
    assert (s.key, s.key_source, s.base_url) == (
        "sk-env",
        "ANTHROPIC_API_KEY",
        env["ANTHROPIC_BASE_URL"],
    )
    (tmp_path / "anthropic-api-key").write_text("sk-cred\n")
    s = from_env({**env, "CREDENTIALS_DIRECTORY": str(tmp_path)})
    assert (s.key, s.key_source) == ("sk-cred", "credential anthropic-api-key")
    assert "sk-cred" not in repr(s)  # never printed with the settings


def test_the_key_hint_says_where_this_gateway_takes_its_key_from() -> None:
    assert from_env({}).key_hint == UNIT_HINT and "credentials.env" in UNIT_HINT
    assert from_env({"HIVE_GATEWAY_EXIT_WITH": "1"}).key_hint == PROCESS_HINT


@pytest.mark.parametrize(
    ("env", "error"),
    [
        ({"ANTHROPIC_BASE_URL": "api.anthropic.com"}, r"not an http\(s\) URL"),
        ({"HIVE_GATEWAY_RECHECK": "soon"}, "not a number"),
        ({"HIVE_GATEWAY_RECHECK": "0"}, "at least 0.1"),
        ({"HIVE_GATEWAY_EXIT_WITH": "me"}, "not a process id"),
    ],
)
def test_a_bad_setting_is_one_sentence_naming_it(env: dict[str, str], error: str) -> None:
    with pytest.raises(SettingsError, match=error):
        from_env(env)


def test_only_allowed_headers_go_upstream_and_the_key_is_the_gateways() -> None:
    sent = [
        ("x-api-key", "sk-agents-own"),
        ("authorization", "Bearer sk-agents-own"),
        ("cookie", "a=b"),
        ("host", "evil.example"),
        ("x-hive-turn", "t1"),
        ("x-forwarded-for", "1.2.3.4"),
        ("anthropic-version", "2023-06-01"),
        ("anthropic-beta", "prompt-caching"),
        ("x-stainless-retry-count", "0"),
        ("content-type", "application/json"),
        ("accept-encoding", "gzip"),
    ]
    out = upstream.request_headers(sent, "sk-gateway")
    assert [v for k, v in out if k == "x-api-key"] == ["sk-gateway"]
    assert dict(out) == {
        "anthropic-version": "2023-06-01",
        "anthropic-beta": "prompt-caching",
        "x-stainless-retry-count": "0",
        "content-type": "application/json",
        "x-api-key": "sk-gateway",
        "accept-encoding": "identity",
    }


def test_the_apis_headers_come_back_but_the_framing_ones() -> None:
    headers = httpx2.Headers(
        [
            ("Content-Type", "text/event-stream"),
            ("Transfer-Encoding", "chunked"),
            ("Content-Length", "10"),
            ("Connection", "keep-alive"),
            ("request-id", "req_1"),
            ("retry-after", "3"),
        ]
    )
    assert upstream.response_headers(headers) == [
        ("content-type", "text/event-stream"),
        ("request-id", "req_1"),
        ("retry-after", "3"),
    ]


@pytest.mark.parametrize("refusal", list(GatewayRefusal))
def test_each_refusal_reads_as_the_apis_own_error(refusal: GatewayRefusal) -> None:
    body = json.loads(refusals.body(refusal, "one sentence"))
    assert body == {
        "type": "error",
        "error": {
            "type": refusal.error_type,
            "message": "one sentence",
            "hive_refusal": refusal.value,
            "code": refusal.code.value,
        },
    }
    assert ("x-hive-refusal", refusal.value) in refusals.headers(refusal)
    assert isinstance(refusal.code, Code) and 400 <= refusal.http_status < 600
    assert GatewayRefusal.of(refusal.value) is refusal
    assert GatewayRefusal.of("overloaded_error") is None


def test_accounts_follow_the_agents_table() -> None:
    roster = Roster()
    added, gone, changed = roster.apply(
        [AgentRow("alice", 1.0, None), AgentRow("bob", 1.0, 5.0)], {"alice": 0.5, "bob": 5.0}
    )
    assert (added, gone, changed) == (["alice", "bob"], [], False)
    alice, bob = roster.get("alice"), roster.get("bob")
    assert alice is not None and not alice.capped and alice.spent_usd == 0.5
    assert bob is not None and bob.capped  # at the cap counts as over it
    assert "bob has spent $5.0000 of its $5.00 spending cap" in bob.cap_sentence()
    # bob's cap raised, alice destroyed and made again, carol new, nobody else
    rows = [AgentRow("alice", 2.0, None), AgentRow("bob", 1.0, 10.0), AgentRow("carol", 3.0, None)]
    assert [r.name for r in roster.needs_spend(rows)] == ["alice", "carol"]
    added, gone, changed = roster.apply(rows, {"alice": 0.0, "carol": 0.0})
    assert (added, gone, changed) == (["carol"], [], True)
    assert roster.get("alice").spent_usd == 0.0  # type: ignore[union-attr]
    assert not roster.get("bob").capped  # type: ignore[union-attr]
    added, gone, changed = roster.apply([AgentRow("carol", 3.0, None)], {})
    assert gone == ["alice", "bob"] and roster.get("alice") is None
