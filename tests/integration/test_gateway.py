"""The model gateway as the coordinator's process backend runs it, in front of the fake
Messages API: real sockets, the harness's own `anthropic` client over them, SQLite read
back as an operator would. Streaming passes through as it arrives, usage rows are the
API's usage blocks, identity is the socket, the cap refuses, agents come and go.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import threading
from typing import Any

import anthropic
import pytest
from hyperhive.agent.api import Api
from hyperhive.agent.gateway import Gateway, GatewayDown, Status
from hyperhive.hive.pricing import cost

from tests.fakeapi import API_KEY, FakeAnthropic, Held, Reply, Text, text
from tests.fakeapi.harness import fake_api  # noqa: F401 - the pytest fixture `fake`
from tests.hivetest import RunningHive, running_hive, spawn, wait_serving
from tests.integration.flowtools import commit_file, config_text

MODEL = "claude-haiku-4-5"
CACHED = [{"type": "text", "text": "you test the gateway", "cache_control": {"type": "ephemeral"}}]


def client(hive: RunningHive, name: str) -> anthropic.Anthropic:
    """The harness's own client (no key, the unix socket as transport), for agent `name`."""
    wait_serving(hive.paths, name)
    return Api(hive.paths.gateway_socket(name), retry_base=0, retry_cap=0, max_retries=0).client


def usage_rows(hive: RunningHive) -> list[dict[str, Any]]:
    db = sqlite3.connect(hive.paths.db)
    db.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in db.execute("SELECT * FROM usage ORDER BY id")]
    finally:
        db.close()


def ask(c: anthropic.Anthropic, say: str = "hi", **extra: Any) -> Any:
    with c.messages.stream(
        model=MODEL,
        max_tokens=100,
        system=CACHED,
        messages=[{"role": "user", "content": say}],
        **extra,
    ) as stream:
        return stream.get_final_message()


def set_cap(hive: RunningHive, name: str, cap: float, period: str = "total") -> None:
    """Apply a config with `[budget] <period>_usd = cap`, as the manager asks and the
    operator approves."""
    sha = commit_file(
        hive.paths.proposed_repo(name),
        "agent.toml",
        config_text(f"[budget]\n{period}_usd = {cap}\n"),
        f"cap {cap}",
    )
    aid = hive.manager("request_apply_commit", agent=name, commit_ref=sha)["id"]
    assert hive.admin("approve", id=aid)["approval"]["status"] == "approved"


def test_the_first_event_reaches_the_client_before_the_api_has_finished(
    hive: RunningHive, fake: FakeAnthropic
) -> None:
    spawn(hive, "alice")
    c = client(hive, "alice")
    release = threading.Event()
    fake.script(Held(Reply([Text("the rest arrives later")]), release))
    with c.messages.stream(
        model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        events = iter(stream)
        first = next(events)
        # the API is still holding the rest of its answer: nothing was buffered on the way
        assert first.type == "message_start"
        assert not release.is_set() and fake.usages == []
        release.set()
        final = stream.get_final_message()
    assert final.content[0].text == "the rest arrives later"
    assert len(fake.usages) == 1


def test_usage_rows_are_the_apis_usage_blocks_exactly(
    hive: RunningHive, fake: FakeAnthropic
) -> None:
    spawn(hive, "alice")
    c = client(hive, "alice")
    fake.script(text("one"), text("two, from the cache"), text("three, not streamed"))
    ask(c, extra_headers={"X-Hive-Turn": "turn-1"})  # writes the cached prefix
    ask(c, "again", extra_headers={"X-Hive-Turn": "turn-1"})  # reads it
    c.messages.create(
        model="claude-opus-4-6",
        max_tokens=50,
        system=CACHED,
        messages=[{"role": "user", "content": "plain"}],
        extra_headers={"X-Hive-Turn": "turn-2"},
    )
    counted = c.messages.count_tokens(model=MODEL, messages=[{"role": "user", "content": "x"}])
    assert counted.input_tokens > 0  # forwarded, and free: no row
    rows = usage_rows(hive)
    sent = fake.usages
    assert len(rows) == len(sent) == 3
    assert sent[0]["cache_creation_input_tokens"] > 0 and sent[1]["cache_read_input_tokens"] > 0
    for row, block, model in zip(rows, sent, [MODEL, MODEL, "claude-opus-4-6"], strict=True):
        assert (
            row["input_tokens"],
            row["output_tokens"],
            row["cache_write_tokens"],
            row["cache_read_tokens"],
        ) == (
            block["input_tokens"],
            block["output_tokens"],
            block["cache_creation_input_tokens"],
            block["cache_read_input_tokens"],
        )
        assert row["model"] == model and row["agent"] == "alice" and row["complete"] == 1
        assert row["cost_usd"] == pytest.approx(
            cost(
                model,
                input=block["input_tokens"],
                output=block["output_tokens"],
                cache_write=block["cache_creation_input_tokens"],
                cache_read=block["cache_read_input_tokens"],
            )
        )
        assert row["request_id"].startswith("req_")
    assert [r["turn"] for r in rows] == ["turn-1", "turn-1", "turn-2"]
    listed = hive.admin("agent_status", name="alice")["agents"][0]
    assert listed["spent_usd"] == pytest.approx(sum(r["cost_usd"] for r in rows), abs=1e-6)


def test_an_agent_spends_only_as_itself_and_never_with_its_own_key(
    hive: RunningHive, fake: FakeAnthropic
) -> None:
    """Identity is the socket: headers naming bob, or a key alice brings, change nothing."""
    spawn(hive, "alice", "bob")
    c = client(hive, "alice")
    fake.script(text("spent by alice"))
    ask(
        c,
        extra_headers={
            "X-Hive-Turn": "bobs-turn",
            "X-Hive-Agent": "bob",
            "X-Api-Key": "sk-ant-alices-own-key",
            "Authorization": "Bearer sk-ant-alices-own-key",
            "Cookie": "session=bob",
        },
    )
    (req,) = fake.wait_requests(1)
    assert req.headers["x-api-key"] == API_KEY  # the gateway's key, and only it
    for header in ("authorization", "cookie", "x-hive-agent", "x-hive-turn"):
        assert header not in req.headers, header
    (row,) = usage_rows(hive)
    assert row["agent"] == "alice" and row["turn"] == "bobs-turn"
    rows = {r["name"]: r for r in hive.admin("list")["agents"]}
    assert (
        rows["alice"]["spent_usd"] == pytest.approx(row["cost_usd"], abs=1e-6)
        and row["cost_usd"] > 0
    )
    assert rows["bob"]["spent_usd"] == 0


def test_an_agent_over_budget_is_refused_in_the_apis_shape_until_its_cap_is_raised(
    hive: RunningHive, fake: FakeAnthropic
) -> None:
    spawn(hive, "alice", "bob")
    set_cap(hive, "alice", 0.00001)  # less than one answer costs
    listed = hive.admin("agent_status", name="alice")["agents"][0]
    assert listed["budget"]["cap_usd"] == 0.00001 and listed["budget"]["period"] == "total"
    assert listed["budget"]["source"] == "agent.toml" and not listed["budget"]["over"]
    c = client(hive, "alice")
    fake.script(text("the last one under the cap"))
    ask(c)  # under the cap when it starts: it goes through, and passes the cap
    status = wait_serving(hive.paths, "alice")
    assert status.over_budget and status.phase == "over_budget"
    assert status.detail is not None and "its total cap is $0.00 (agent.toml)" in status.detail
    with pytest.raises(anthropic.PermissionDeniedError) as refused:
        ask(c, "one more")
    err = refused.value
    assert err.status_code == 403 and err.response.headers["x-hive-refusal"] == "over_budget"
    assert isinstance(err.body, dict)
    assert err.body["error"]["type"] == "permission_error"
    assert err.body["error"]["hive_refusal"] == "over_budget"
    assert err.body["error"]["message"].startswith("alice has spent $")
    assert len(fake.requests) == 1  # the refused request never left the host
    fake.script(text("bob has no cap"))
    ask(client(hive, "bob"))  # one agent's cap is its own
    # a status request waiting on "over_budget" is woken when the operator raises the cap
    woke: list[Status] = []
    gateway = Gateway(hive.paths.gateway_socket("alice"))
    waiter = threading.Thread(
        target=lambda: woke.append(gateway.status(wait=120, seen=status.state))
    )
    waiter.start()
    set_cap(hive, "alice", 100)
    waiter.join(60)
    gateway.close()
    assert woke and woke[0].usable, woke
    fake.script(text("going on"))
    assert ask(c, "go on").content[0].text == "going on"


def test_the_gateway_follows_agents_as_they_come_and_go(
    env: dict[str, str], fake: FakeAnthropic
) -> None:
    """Woken by the coordinator's doorbell, not its ten-minute safety net."""
    with running_hive({**env, "HIVE_GATEWAY_RECHECK": "600"}) as hive:
        spawn(hive, "alice")
        wait_serving(hive.paths, "alice")
        spawn(hive, "carol")
        assert wait_serving(hive.paths, "carol").usable
        hive.admin("destroy", name="carol")
        assert not hive.paths.gateway_socket_dir("carol").exists()
        with pytest.raises(GatewayDown):
            Gateway(hive.paths.gateway_socket("carol")).status()
        assert wait_serving(hive.paths, "alice").usable


def raw_request(path: Any, data: bytes) -> tuple[int, dict[str, Any], bytes]:
    """One raw HTTP exchange on a unix socket: (status, JSON body, raw head)."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(30)
        s.connect(str(path))
        s.sendall(data)
        got = b""
        while b"\r\n\r\n" not in got:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
        head, _, rest = got.partition(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        while len(rest) < length:
            rest += s.recv(65536)
    return int(head.split()[1]), json.loads(rest), head


@pytest.mark.parametrize(
    ("request_bytes", "status", "error_type", "refusal"),
    [
        (b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n", 404, "not_found_error", "not_forwarded"),
        (
            b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 40000000\r\n\r\n",
            413,
            "request_too_large",
            "too_large",
        ),
        (b"NONSENSE\r\n\r\n", 400, "invalid_request_error", "bad_request"),
    ],
)
def test_what_the_gateway_does_not_forward_is_refused_in_the_apis_shape(
    hive: RunningHive,
    fake: FakeAnthropic,
    request_bytes: bytes,
    status: int,
    error_type: str,
    refusal: str,
) -> None:
    spawn(hive, "alice")
    wait_serving(hive.paths, "alice")
    got, body, _ = raw_request(hive.paths.gateway_socket("alice"), request_bytes)
    assert got == status
    assert body["type"] == "error" and body["error"]["type"] == error_type
    assert body["error"]["hive_refusal"] == refusal and body["error"]["message"]
    assert fake.requests == []


def test_an_unreachable_api_is_a_retryable_error_naming_it(
    env: dict[str, str], fake: FakeAnthropic
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"  # nobody listens there
    with running_hive({**env, "ANTHROPIC_BASE_URL": closed}) as hive:
        spawn(hive, "alice")
        with pytest.raises(anthropic.InternalServerError) as failed:
            ask(client(hive, "alice"))
    assert failed.value.status_code == 502
    assert isinstance(failed.value.body, dict)
    error = failed.value.body["error"]
    assert error["type"] == "api_error" and error["hive_refusal"] == "upstream_down"
    assert closed in error["message"]


def test_the_operator_sees_the_gateways_numbers_not_what_the_harness_claims(
    hive: RunningHive, fake: FakeAnthropic
) -> None:
    spawn(hive, "alice")
    fake.script(text("counted"))
    answer = ask(client(hive, "alice"), extra_headers={"X-Hive-Turn": "t-7"})
    hive.agent(  # the harness claims its turn was free
        "alice",
        "set_turn_state",
        state="idle",
        turn="t-7",
        started_at=1.0,
        ended_at=2.0,
        input_tokens=0,
        output_tokens=0,
        cost_usd=0.0,
    )
    turn = hive.admin("agent_status", name="alice")["agents"][0]["turn"]
    (row,) = usage_rows(hive)
    assert turn["output_tokens"] == answer.usage.output_tokens == row["output_tokens"] > 0
    assert turn["input_tokens"] == row["input_tokens"] + row["cache_write_tokens"] > 0
    assert turn["cost_usd"] == pytest.approx(row["cost_usd"], abs=1e-6) and row["cost_usd"] > 0
