"""What the dashboard shows: row shaping, display text, live diffs and template escaping."""

from __future__ import annotations

import json
import threading
import time

from hyperhive.web import display, pages, views
from hyperhive.web.live import AgentRows, Subscriber, _Topic, sse


def row(**kw: object) -> dict[str, object]:
    base: dict[str, object] = {
        "name": "alice",
        "state": "running",
        "transient": None,
        "needs_update": False,
        "needs_login": False,
        "model": "claude-sonnet-4-5",
        "model_override": None,
        "turn": None,
        "inbox": 0,
        "note": None,
    }
    base.update(kw)
    return base


def test_status_badges() -> None:
    assert views.agent_status(row()) == "running"
    assert views.agent_status(row(state="failed")) == "failed"
    assert views.agent_status(row(state="spawning")) == "spawning"
    assert views.agent_status(row(needs_login=True)) == "needs_login"
    assert views.agent_status(row(state="destroyed")) == "stopped"
    busy = views.agent_view(row(transient="restarting"))
    assert busy["label"] == "restarting" and busy["busy"] and not busy["can_stop"]
    manager = views.agent_view(row(name="hm1nd"))
    assert not manager["can_destroy"] and manager["can_stop"]


def test_a_running_turn_offers_cancel_and_a_finished_one_a_chip() -> None:
    t = time.time()
    running = {"state": "tool", "tool": "shell", "started_at": t - 5, "ended_at": t - 60}
    assert views.turn_running(running)
    assert views.agent_view(row(turn=running))["can_cancel"]
    done = {
        "state": "idle",
        "started_at": t - 50,
        "ended_at": t - 8,
        "input_tokens": 12000,
        "output_tokens": 345,
    }
    shown = views.turn_view(done)
    assert shown is not None and not shown["running"]
    assert shown["took"] == "42s" and shown["tokens"] == "12.3k tok"
    assert not views.agent_view(row(turn=done))["can_cancel"]
    assert views.stale(
        [row(needs_update=True), row(name="bob", needs_update=True, transient="x")]
    ) == ["alice"]


def test_display_text() -> None:
    assert display.duration(59) == "59s" and display.duration(61) == "1m01s"
    assert display.duration(7260) == "2h01m" and display.duration(None) == "—"
    assert display.tokens(999) == "999 tok" and display.tokens(2_500_000) == "2.50M tok"
    assert [c for c, _ in display.diff_lines("--- a\n+++ b\n@@ -1 +1 @@\n-x\n+y\n z")] == [
        "d-file",
        "d-file",
        "d-hunk",
        "d-del",
        "d-add",
        "d-ctx",
    ]


def test_helper_events_are_pretty_printed() -> None:
    body = json.dumps({"event": "spawned", "agent": "carol", "ok": True, "note": None})
    shown = display.helper_event(body)
    assert shown == {"glyph": "✦", "name": "spawned", "fields": [("agent", "carol"), ("ok", "yes")]}
    assert display.helper_event("not json") is None
    assert display.helper_event(json.dumps({"event": "nope"})) is None


def test_templates_escape_agent_text() -> None:
    evil = "<script>alert(1)</script>\"'&"
    html = pages.render(
        "message",
        m={
            "id": 1,
            "sender": "alice",
            "recipient": "hm1nd",
            "incoming": False,
            "from_operator": False,
            "body": evil,
            "event": None,
            "delivered": False,
            "status": "set_aside",
            "reason": evil,  # a harness's set_aside reason is agent text too
            "can_drop": True,
            "created_at": 0,
            "created_clock": "",
        },
    )
    assert "<script>" not in html
    assert html.count("&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#039;&amp;") == 2
    assert 'action="/drop/1"' in html and "set aside" in html
    chip = pages.render(
        "note", n={"id": 3, "text": evil, "alert": False, "created_at": 0, "created_clock": evil}
    )
    assert "<script>" not in chip and 'title="&lt;script&gt;' in chip


def test_live_diffs_carry_only_changed_rows() -> None:
    topic = _Topic()
    first = topic.diff({"inbox": pages.Keyed(["m-1", "m-2"], {"m-1": "<a>", "m-2": "<b>"})})
    assert first == {"inbox": {"order": ["m-1", "m-2"], "html": {"m-1": "<a>", "m-2": "<b>"}}}
    again = topic.diff({"inbox": pages.Keyed(["m-1", "m-2"], {"m-1": "<a>", "m-2": "<b>"})})
    assert again == {}
    grown = topic.diff(
        {"inbox": pages.Keyed(["m-2", "m-3"], {"m-2": "<b>", "m-3": "<c>"}), "turn": "<t>"}
    )
    assert grown == {
        "inbox": {"order": ["m-2", "m-3"], "html": {"m-3": "<c>"}},
        "turn": {"html": "<t>"},
    }
    assert topic.snapshot()["inbox"]["html"] == {"m-2": "<b>", "m-3": "<c>"}


def test_sections_follow_the_kinds_that_changed() -> None:
    assert pages.affected("index", ["questions"]) == ["questions"]
    assert set(pages.affected("index", ["turns"])) == {"agents", "hivespend"}
    assert set(pages.affected("agent:alice", ["agents"])) == {"staterow", "turn", "budget"}
    assert set(pages.affected("agent:alice", ["messages"])) == {"staterow", "turn", "inbox"}
    assert pages.topic_agent("agent:alice") == "alice" and pages.topic_agent("index") is None


def test_sse_frames_and_a_slow_subscriber_is_dropped() -> None:
    assert sse("patch", "a\nb", "c1") == "id: c1\nevent: patch\ndata: a\ndata: b\n\n"
    sub = Subscriber("index")
    assert all(sub.put(f"frame {i}") for i in range(64))
    assert not sub.put("one too many") and sub.closed
    frames = [sub.get(0.01) for _ in range(64)]
    assert frames[-1] is None  # the stream ends; the browser reconnects and gets a snapshot


def test_an_agent_over_budget_says_so_and_its_spend_shows_against_its_cap() -> None:
    at_cap = {
        "period": "daily",
        "cap_usd": 5.0,
        "source": "operator",
        "spent_usd": 5.25,
        "since": 1.0,
        "over": True,
        "config_usd": None,
        "operator_usd": 5.0,
    }
    view = views.agent_view(row(budget=at_cap, spent_usd=7.5, waiting_operator=True))
    assert view["status"] == "over_budget" and view["can_stop"] and not view["can_cancel"]
    assert view["spend"] == {"text": "$5.25 of $5.00 daily", "over": True, "shown": True}
    assert views.agent_view(row(state="stopped", budget=at_cap))["status"] == "stopped"
    under = views.agent_view(row(budget={**at_cap, "spent_usd": 1.0, "over": False}))
    assert under["status"] == "running" and not under["spend"]["over"]
    assert not views.agent_view(row())["spend"]["shown"]  # nothing spent, no cap
    assert views.agent_view(row(spent_usd=0.004))["spend"]["text"] == "$0.0040"


def test_the_index_lists_agents_needing_attention_first_and_at_most_its_share() -> None:
    calm = [row(name=f"a{i:04d}") for i in range(views.INDEX_AGENTS + 50)]
    failed = row(name="zz-failed", state="failed", note="exit 3")
    stale = row(name="zz-stale", needs_update=True)
    waits = row(name="zz-waits", waiting_operator=True)
    shown, total = views.index_agents([*calm, failed, stale, waits])
    assert total == views.INDEX_AGENTS + 53 and len(shown) == views.INDEX_AGENTS
    assert [v["name"] for v in shown[:3]] == ["zz-failed", "zz-stale", "zz-waits"]
    assert [v["name"] for v in shown[3:5]] == ["a0000", "a0001"]  # then the list's order
    few, total = views.index_agents(calm[:5])
    assert [v["name"] for v in few] == [f"a{i:04d}" for i in range(5)] and total == 5


class SlowList:
    """An admin socket whose `list` waits until the test lets it answer."""

    def __init__(self) -> None:
        self.answer = threading.Event()
        self.asked = threading.Event()
        self.calls = 0

    def call(self, cmd: str, **fields: object) -> dict[str, object]:
        self.calls += 1
        self.asked.set()
        self.answer.wait(10)
        return {"agents": [row(name=f"gen{self.calls}")]}


def test_a_page_gets_the_last_rows_at_once_while_new_ones_are_fetched() -> None:
    admin = SlowList()
    rows = AgentRows(admin)  # type: ignore[arg-type]
    admin.answer.set()
    assert [r["name"] for r in rows.get()] == ["gen1"]
    admin.answer.clear()
    admin.asked.clear()
    rows.invalidate()  # a change: the hub fetches new rows, slowly
    fetched: list[list[str]] = []
    hub = threading.Thread(target=lambda: fetched.append([r["name"] for r in rows.get()]))
    hub.start()
    assert admin.asked.wait(10)
    assert [r["name"] for r in rows.latest()] == ["gen1"]  # not held behind the fetch
    admin.answer.set()
    hub.join(10)
    assert fetched == [["gen2"]] and [r["name"] for r in rows.latest()] == ["gen2"]
    assert admin.calls == 2  # one fetch per change, pages included
