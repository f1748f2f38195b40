"""The agent's state comes first: a stopped or crashed agent never hides behind its last
turn state (needs_login), its note is shown, and a stopped agent offers start."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from html import escape

import pytest

from tests.browser.webtest import RunningWeb, WebClient
from tests.hivetest import RunningHive, hivectl


@pytest.fixture
def web(hive: RunningHive, env: dict[str, str]) -> Iterator[RunningWeb]:
    running = RunningWeb(env)
    yield running
    running.stop()


def needs_login(hive: RunningHive, name: str) -> None:
    """What the harness reports when it has no key."""
    with hive.agent(name) as a:
        a.call("set_turn_state", state="needs_login", detail="no Anthropic API key")


def settled_row(c: WebClient, name: str, status: str) -> str:
    """The row once the dashboard has heard of the change (its live loop, a few ms)."""
    deadline = time.monotonic() + 30
    while f'data-status="{status}"' not in (row := row_html(c.get("/").text, name)):
        assert time.monotonic() < deadline, row
        time.sleep(0.05)
    return row


def row_html(page: str, name: str) -> str:
    start = page.index(f'id="agent-{name}"')
    return page[start : page.index("</div>\n", start)]


def test_a_stopped_agent_shows_stopped_and_offers_start(
    hive: RunningHive, web: RunningWeb, env: dict[str, str]
) -> None:
    with hive.admin() as a:
        a.call("spawn", name="alice")
    needs_login(hive, "alice")
    c = web.client()
    settled_row(c, "alice", "needs_login")  # a running agent: the turn state refines it
    with hive.admin() as a:
        a.call("stop", name="alice")
        assert a.call("agent_status", name="alice")["agents"][0]["needs_login"] is False
    row = settled_row(c, "alice", "stopped")
    assert "needs_login" not in row
    assert 'action="/start/alice"' in row
    page = c.get("/agent/alice").text
    assert 'data-status="stopped"' in page and "the agent is stopped" in page
    listing = hivectl(env, "list").stdout
    line = next(x for x in listing.splitlines() if x.startswith("alice"))
    assert "stopped" in line and "needs_login" not in line


def test_a_crashed_agent_shows_failed_with_its_note(hive: RunningHive, web: RunningWeb) -> None:
    with hive.admin() as a:
        a.call("spawn", name="alice")
    needs_login(hive, "alice")
    pid = int((hive.paths.runtime_dir / "process" / "alice.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while True:  # the process backend reports the exit; wait for the row to say so
        with hive.admin() as a:
            row = a.call("agent_status", name="alice")["agents"][0]
        if row["state"] == "failed":
            break
        assert time.monotonic() < deadline, row
        time.sleep(0.1)
    html = settled_row(web.client(), "alice", "failed")
    assert "needs_login" not in html
    shown = f'<div class="note">{escape(row["note"])}'  # visible, not only a tooltip
    assert row["note"] and shown in html, (row["note"], html)
    assert 'action="/start/alice"' in html
