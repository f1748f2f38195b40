"""Every refusal carries a code clients branch on, and the dashboard's status and hivectl's
answer derive from it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hyperhive.hive.vocab import Code

from tests.browser.webtest import RunningWeb
from tests.hivetest import RunningHive, hivectl


def request(path: Any, cmd: str, **fields: Any) -> dict[str, Any]:
    from hyperhive.hive.client import HiveClient

    with HiveClient(path) as c:
        return c.request({"cmd": cmd, **fields})


@pytest.fixture
def web(hive: RunningHive, env: dict[str, str]) -> Iterator[RunningWeb]:
    running = RunningWeb(env)
    yield running
    running.stop()


def test_each_kind_of_refusal_has_its_code(hive: RunningHive) -> None:
    admin, manager = hive.paths.admin_socket, hive.paths.manager_socket
    request(admin, "spawn", name="alice")
    cases = [
        (admin, {"cmd": "spawn", "name": "Bad Name"}, Code.INVALID),
        (admin, {"cmd": "approve", "id": "x"}, Code.INVALID),
        (admin, {"cmd": "frobnicate"}, Code.INVALID),
        (hive.paths.agent_socket("alice"), {"cmd": "kill", "agent": "alice"}, Code.FORBIDDEN),
        (manager, {"cmd": "kill", "agent": "hm1nd"}, Code.FORBIDDEN),
        (admin, {"cmd": "approve", "id": 999}, Code.NOT_FOUND),
        (admin, {"cmd": "start", "name": "nobody-here"}, Code.NOT_FOUND),
        (manager, {"cmd": "request_apply_commit", "agent": "alice", "commit_ref": "0" * 40},
         Code.NOT_FOUND),
        (admin, {"cmd": "spawn", "name": "alice"}, Code.CONFLICT),
        (admin, {"cmd": "session_open", "password": "wrong one", "client": "t"}, Code.FORBIDDEN),
    ]  # fmt: skip
    for path, req, code in cases:
        got = request(path, req.pop("cmd"), **req)
        assert got["ok"] is False and got["code"] == code, (req, got)


def test_the_dashboard_and_hivectl_answer_by_the_code(
    hive: RunningHive, web: RunningWeb, env: dict[str, str]
) -> None:
    c = web.client()
    assert c.post("/approve/999").status == Code.NOT_FOUND.http_status  # was always 409
    assert c.get("/api/model?name=nobody-here").status == 404
    request(hive.paths.admin_socket, "spawn", name="alice")
    again = c.post("/spawn", {"name": "alice"})
    assert again.status == 409 and again.json()["code"] == "conflict"
    out = hivectl(env, "--json", "approve", "999")
    assert out.returncode == Code.NOT_FOUND.exit_status == 1
    assert json.loads(out.stdout)["code"] == "not_found"
