"""Spending caps on the dashboard and through a notification's link, with real parts: a real
coordinator and its model gateway in front of the fake Messages API (how an agent spends), a
real hive-web, the operator's session or a link's page. What the operator does there is
`set_budget` in their name, in the audit trail as the dashboard session or the link."""

from __future__ import annotations

import html
import sqlite3
from collections.abc import Iterator

import pytest
from hyperhive.hive import actionlinks
from hyperhive.hive.db import ActionLink, open_db

from tests.browser.webtest import RunningWeb
from tests.fakeapi import FakeAnthropic, text
from tests.fakeapi.harness import fake_api  # noqa: F401 - the pytest fixture `fake`
from tests.hivetest import RunningHive, running_hive, spawn, wait_serving
from tests.integration.test_action_links import hive_and_web
from tests.integration.test_budgets import wait_events, wait_status
from tests.integration.test_gateway import ask, client, set_cap
from tests.integration.test_notify import notify_env
from tests.notifytest import receiver, running_notify


def at_daily_cap(hive: RunningHive, fake: FakeAnthropic, name: str = "alice") -> None:
    """`name` spawned with a daily cap one answer passes, and past it."""
    spawn(hive, name)
    set_cap(hive, name, 0.00001, period="daily")
    fake.script(text("the last one under the cap"))
    ask(client(hive, name))
    assert wait_serving(hive.paths, name).over_budget


def daily(reply: dict[str, object]) -> dict[str, object]:
    periods = reply["periods"]
    assert isinstance(periods, list)
    return next(p for p in periods if p["period"] == "daily")


@pytest.fixture
def web(hive: RunningHive, env: dict[str, str]) -> Iterator[RunningWeb]:
    running = RunningWeb(env)
    yield running
    running.stop()


def test_the_operator_sets_drops_and_resets_a_cap_on_the_agent_page(
    hive: RunningHive, web: RunningWeb, fake: FakeAnthropic
) -> None:
    at_daily_cap(hive, fake)
    c = web.client()
    page = c.get("/agent/alice").text
    row = page.split('id="budget-alice-daily"', 1)[1].split("</tr>", 1)[0]
    assert 'data-over="yes"' in row and "at cap" in row and "agent.toml" in row
    assert 'action="/cap/alice"' in row and 'action="/reset-budget/alice"' in row
    assert 'id="budget-alice-monthly"' in page and 'id="budget-alice-total"' in page
    assert 'id="hive-spend"' in c.get("/").text
    waiting = c.get("/waiting").text
    over = waiting.split('id="over-alice"', 1)[1].split("</div>\n</div>", 1)[0]
    assert 'href="/agent/alice"' in over and "its daily cap is $0.00 (agent.toml)" in html.unescape(
        over
    )

    raised = c.post("/cap/alice", {"period": "daily", "usd": "50"})
    assert raised.status == 200, raised.text
    said = raised.json()
    assert said["ok"] and said["message"] == "alice's daily cap is $50.00 (operator)"
    assert daily(said["budget"])["source"] == "operator" and said["budget"]["over"] is None
    assert 'id="over-alice"' not in c.get("/waiting").text
    assert 'class="inline drop-cap"' in c.get("/agent/alice").text  # the operator's can go

    dropped = c.post("/cap/alice", {"period": "daily", "usd": ""}).json()
    assert daily(dropped["budget"])["source"] == "agent.toml"
    assert "alice has spent" in dropped["message"]  # at the config's cap again, said why
    reset = c.post("/reset-budget/alice", {"period": "daily"}).json()
    assert reset["ok"] and daily(reset["budget"])["spent_usd"] == 0
    assert reset["budget"]["over"] is None

    for path, fields, status, said_part in (
        ("/cap/alice", {"period": "daily", "usd": "lots"}, 400, "must be a number of US dollars"),
        ("/cap/alice", {"period": "daily", "usd": "-1"}, 400, "must be from 0 to"),
        ("/cap/alice", {"period": "daily", "usd": "nan"}, 400, "must be from 0 to"),
        ("/cap/alice", {"period": "weekly", "usd": "5"}, 400, "field 'period' must be one of"),
        ("/reset-budget/alice", {}, 400, "field 'period' is required"),
        ("/cap/zed", {"period": "daily", "usd": "5"}, 404, "no agent named 'zed'"),
    ):
        got = c.post(path, fields)
        assert got.status == status and said_part in got.json()["message"], (path, got.text)

    trail = hive.admin("history", agent="alice")["decisions"]
    caps = [d for d in trail if d["action"] == "cap"]
    assert [d["outcome"] for d in caps] == ["ok", "ok", "ok"]
    assert all(d["channel"] == "dashboard" for d in caps)
    assert all(str(d["actor"]).startswith("dashboard session #") for d in caps)
    assert caps[-1]["detail"]["daily_usd"] == 50  # newest first: the raise was the first


def outbox_budget_items(hive: RunningHive) -> list[int]:
    with sqlite3.connect(hive.paths.db) as db:
        rows = db.execute("SELECT item_id FROM outbox WHERE kind = 'budget_reached' ORDER BY id")
        return [int(i) for (i,) in rows]


def test_a_budget_link_raises_the_cap_once_and_a_reset_closes_the_next(
    env: dict[str, str], fake: FakeAnthropic
) -> None:
    with hive_and_web(env) as (hive, web):
        at_daily_cap(hive, fake)
        wait_events(hive, 1)
        (event_id,) = outbox_budget_items(hive)  # the notice names the event it is about
        made = hive.admin(
            "action_link", item="budget", id=event_id, channel="ntfy", actor="hive-notify"
        )
        secret = str(made["url"]).rsplit("/", 1)[1]
        phone = web.anonymous()  # a browser that never signed in
        for _ in range(2):  # a GET (a preview, a prefetch) shows, never acts
            shown = phone.get(f"/act/{secret}")
            assert shown.status == 200 and 'data-state="open"' in shown.text
            assert 'id="act-budget-alice-daily"' in shown.text and 'name="usd"' in shown.text
        assert hive.admin("budget", name="alice")["over"] == "daily"

        form = {"csrf": actionlinks.form_token(secret), "action": "raise"}
        low = phone.post(f"/act/{secret}", {**form, "usd": "0"}, csrf=False)
        assert low.status == 400 and "is not above" in low.json()["message"]
        ok = phone.post(f"/act/{secret}", {**form, "usd": "20"}, csrf=False)
        assert ok.status == 200, ok.text
        assert ok.json()["message"] == "alice's daily cap raised to $20.00"
        shown_after = hive.admin("budget", name="alice")
        assert shown_after["over"] is None and daily(shown_after)["cap_usd"] == 20
        assert wait_status(hive, "alice", "over_budget").usable
        again = phone.post(f"/act/{secret}", {**form, "usd": "30"}, csrf=False)
        assert again.status == 409 and "used already" in again.json()["message"]
        assert daily(hive.admin("budget", name="alice"))["cap_usd"] == 20

        trail = hive.admin("history", agent="alice")["decisions"]
        by_link = [d for d in trail if d["channel"] == "link"]
        assert len(by_link) == 1 and by_link[0]["action"] == "cap"
        assert by_link[0]["outcome"] == "ok" and by_link[0]["detail"]["daily_usd"] == 20
        assert str(by_link[0]["actor"]).startswith("action link #")

        # at the cap again (the operator's own, taken back), a new link; then a reset
        hive.admin("set_budget", name="alice", daily_usd=0.000001)
        second = hive.admin(
            "action_link", item="budget", id=event_id, channel="json", actor="hive-notify"
        )
        s2 = str(second["url"]).rsplit("/", 1)[1]
        assert phone.get(f"/act/{s2}").status == 200  # the window of the event, at cap
        hive.admin("set_budget", name="alice", reset=["daily"])
        stale = phone.get(f"/act/{s2}")
        assert stale.status == 409 and 'data-state="resolved"' in stale.text
        assert "no longer the one counting" in html.unescape(stale.text)
        assert 'name="usd"' not in stale.text  # nothing to act on is offered
        form2 = {"csrf": actionlinks.form_token(s2), "action": "reset"}
        refused = phone.post(f"/act/{s2}", form2, csrf=False)
        assert refused.status == 409 and "no longer the one counting" in refused.text
        with hive.admin() as a:  # and no new link for a window that is over
            reply = a.request(
                {"cmd": "action_link", "item": "budget", "id": event_id, "channel": "ntfy"}
            )
        assert not reply["ok"] and reply["code"] == "conflict"
        assert secret not in web.log() and secret not in hive.log()


def test_the_cap_notice_carries_a_link_to_raise_or_reset_that_one_period(
    env: dict[str, str], fake: FakeAnthropic
) -> None:
    with receiver() as rx:
        e = notify_env(env, rx.json_url())
        with running_hive(e) as hive, running_notify(e):
            at_daily_cap(hive, fake)
            got = rx.having("alice reached its daily spending cap", path="/hook")
            (url,) = got.links()
            assert "raise the cap or reset the count (one use, 24 h)" in got.message
            secret = url.rsplit("/", 1)[1]
            (event_id,) = outbox_budget_items(hive)
            open_db(hive.paths.db, create=False)
            link = ActionLink.get(ActionLink.token_hash == actionlinks.sessions.digest(secret))
            assert (link.item_kind, link.item_id, link.channel) == ("budget", event_id, "json")
