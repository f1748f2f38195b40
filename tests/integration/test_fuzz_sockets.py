"""Property-based: random bytes and random JSON at every socket get a reply each, and the
coordinator lives on and still answers correctly."""

from __future__ import annotations

import json
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hyperhive.coordinator.registry import loaded
from hyperhive.hive.protocol import decode_reply, encode
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.hivetest import RunningHive, hive_env

COMMANDS = loaded()

SOCKETS = ("admin", "manager", "agent")


@pytest.fixture(scope="module")
def fuzz_hive() -> Iterator[RunningHive]:
    root = Path(tempfile.mkdtemp(prefix="hh-fuzz-"))
    env = hive_env(root)
    hive = RunningHive(env)
    with hive.admin() as a:
        a.call("spawn", name="alice")
    yield hive
    code = hive.stop()
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(env["HIVE_RUNTIME_DIR"], ignore_errors=True)
    assert code == 0, hive.log()


def socket_path(hive: RunningHive, which: str) -> Path:
    return {
        "admin": hive.paths.admin_socket,
        "manager": hive.paths.manager_socket,
        "agent": hive.paths.agent_socket("alice"),
    }[which]


def exchange(path: Path, payload: bytes, expected_replies: int) -> list[dict[str, Any]]:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(30)
        s.connect(str(path))
        s.sendall(payload)
        rfile = s.makefile("rb")
        replies = [decode_reply(rfile.readline()) for _ in range(expected_replies)]
        s.sendall(encode({"cmd": "whoami"}))
        replies.append(decode_reply(rfile.readline()))
        rfile.close()
        return replies


def check(replies: list[dict[str, Any]], which: str) -> None:
    for r in replies:
        assert isinstance(r["ok"], bool) and r["version"] == 1
        if not r["ok"]:
            assert isinstance(r["error"], str) and r["error"]
            assert "internal error" not in r["error"]
    assert (
        replies[-1]["ok"]
        and replies[-1]["name"]
        == {
            "admin": "operator",
            "manager": "hm1nd",
            "agent": "alice",
        }[which]
    )


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
field_names = st.sampled_from(
    [
        "to",
        "body",
        "name",
        "wait_seconds",
        "state",
        "tool",
        "input_tokens",
        "started_at",
        "cost_usd",
    ]
) | st.text(max_size=12)


@st.composite
def requests(draw: st.DrawFn) -> dict[str, Any]:
    cmd = draw(st.sampled_from(sorted(COMMANDS)) | st.text(max_size=20))
    req: dict[str, Any] = {"cmd": cmd}
    req.update(draw(st.dictionaries(field_names, json_values, max_size=5)))
    if isinstance(req.get("wait_seconds"), int | float) and not isinstance(
        req["wait_seconds"], bool
    ):
        req["wait_seconds"] = 0  # a valid wait would only make the test slow
    return req


fuzz = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@fuzz
@given(which=st.sampled_from(SOCKETS), payload=st.binary(max_size=300))
def test_random_bytes(fuzz_hive: RunningHive, which: str, payload: bytes) -> None:
    data = payload + b"\n"
    replies = exchange(socket_path(fuzz_hive, which), data, data.count(b"\n"))
    check(replies, which)
    assert fuzz_hive.alive()


NO_CMD = "request has no 'cmd': name the command as a string"
NOT_AN_OBJECT = "request must be a JSON object with a 'cmd' field"


@fuzz
@given(which=st.sampled_from(SOCKETS), value=json_values)
def test_random_json(fuzz_hive: RunningHive, which: str, value: Any) -> None:
    path = socket_path(fuzz_hive, which)
    wrapped = exchange(path, encode({"v": value}), 1)
    check(wrapped, which)
    assert wrapped[0]["error"] == NO_CMD, wrapped[0]
    bare = exchange(path, json.dumps(value).encode() + b"\n", 1)
    check(bare, which)
    if not isinstance(value, dict):
        assert bare[0]["error"] == NOT_AN_OBJECT, (value, bare[0])
    elif not isinstance(value.get("cmd"), str):
        assert bare[0]["error"] == NO_CMD, (value, bare[0])
    assert fuzz_hive.alive()


@fuzz
@given(which=st.sampled_from(SOCKETS), reqs=st.lists(requests(), min_size=1, max_size=5))
def test_random_requests(fuzz_hive: RunningHive, which: str, reqs: list[dict[str, Any]]) -> None:
    payload = b"".join(encode(r) for r in reqs)
    replies = exchange(socket_path(fuzz_hive, which), payload, len(reqs))
    check(replies, which)
    assert fuzz_hive.alive()
