"""The gateway's parts alone: where its key comes from, which headers cross it, its refusals,
and how its accounts follow the agents table."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx2
import pytest
from hyperhive.gateway import refusals, upstream
from hyperhive.gateway.roster import AgentRow, CapRow, Roster
from hyperhive.gateway.settings import (
    DEFAULT_BASE_URL,
    PROCESS_HINT,
    UNIT_HINT,
    SettingsError,
    from_env,
)
from hyperhive.hive import budget
from hyperhive.hive.vocab import CapSource, Code, GatewayRefusal, Period


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


def caps(**by_period: float) -> dict[Period, CapRow]:
    return {Period(p): CapRow(v, 0.0, CapSource.CONFIG) for p, v in by_period.items()}


def test_accounts_follow_the_agents_table() -> None:
    roster = Roster()
    t = time.time()
    rows = [AgentRow("alice", 1.0), AgentRow("bob", 1.0, caps(total=5.0))]
    wanted = roster.wanted(rows, t)
    assert wanted == {("alice", None): 1.0, ("bob", None): 1.0, ("bob", Period.TOTAL): 1.0}
    added, gone, changed = roster.apply(
        rows, {("alice", None): 0.5, ("bob", None): 5.0, ("bob", Period.TOTAL): 5.0}, t
    )
    assert (added, gone, changed) == (["alice", "bob"], [], True)
    alice, bob = roster.get("alice"), roster.get("bob")
    assert alice is not None and alice.stop(t) is None and alice.spent_usd == 0.5
    assert bob is not None and (stop := bob.stop(t)) is not None  # at the cap is over it
    assert "bob has spent $5.00 in total, its total cap is $5.00 (agent.toml)" in (
        stop.standing().sentence("bob")
    )
    # bob's cap raised (his spend kept, not read again), alice made again, carol new
    rows = [AgentRow("alice", 2.0), AgentRow("bob", 1.0, caps(total=10.0)), AgentRow("carol", 3.0)]
    assert roster.wanted(rows, t) == {("alice", None): 2.0, ("carol", None): 3.0}
    added, gone, changed = roster.apply(rows, {("alice", None): 0.0, ("carol", None): 0.0}, t)
    assert (added, gone, changed) == (["carol"], [], True)
    assert roster.get("alice").spent_usd == 0.0  # type: ignore[union-attr]
    assert roster.get("bob").stop(t) is None  # type: ignore[union-attr]
    assert roster.get("bob").limits[Period.TOTAL].spent == 5.0  # type: ignore[union-attr]
    added, gone, changed = roster.apply([AgentRow("carol", 3.0)], {}, t)
    assert gone == ["alice", "bob"] and roster.get("alice") is None


def test_a_reset_reads_the_window_again_and_a_new_day_starts_from_nothing() -> None:
    roster = Roster()
    yesterday = budget.period_start(Period.DAILY, time.time(), 0.0) - 3600
    rows = [AgentRow("dan", 1.0, caps(daily=2.0))]
    roster.apply(rows, {("dan", None): 3.0, ("dan", Period.DAILY): 2.5}, yesterday)
    dan = roster.get("dan")
    assert dan is not None and dan.stop(yesterday) is not None
    assert dan.stop(time.time()) is None  # midnight passed: today's count starts at zero
    dan.add(1.5, time.time())
    assert dan.limits[Period.DAILY].spent == 1.5 and dan.spent_usd == 4.5
    # the operator resets the daily count: that window is read from the database again
    t = time.time()
    reset = [AgentRow("dan", 1.0, {Period.DAILY: CapRow(2.0, t, CapSource.CONFIG)})]
    assert roster.wanted(reset, t) == {("dan", Period.DAILY): t}
    roster.apply(reset, {("dan", Period.DAILY): 0.0}, t)
    assert dan.limits[Period.DAILY].spent == 0.0 and dan.limits[Period.DAILY].since == t
