"""Notifications with real parts: a real coordinator queues notices in the outbox, a real
hive-notify sends them through apprise to a local receiver (its `json://` webhook and an
ntfy-compatible endpoint), which fails and recovers, takes bursts, and counts what came."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hyperhive.hive import outbox
from hyperhive.hive.db import open_db, write_tx
from hyperhive.hive.events import ContainerCrash
from hyperhive.hive.inbox import notify_manager, ring_doorbell

from tests.hivetest import RunningHive, free_port, hivectl, running_hive, spawn
from tests.integration.flowtools import commit_file, config_text
from tests.notifytest import FAST, Got, Receiver, receiver, running_notify


@pytest.fixture
def rx() -> Iterator[Receiver]:
    with receiver() as r:
        yield r


def notify_env(env: dict[str, str], *urls: str, **extra: str) -> dict[str, str]:
    return {
        **env,
        **FAST,
        "HIVE_NOTIFY_URLS": " ".join(urls),
        "HIVE_WEB_PUBLIC_URL": f"http://127.0.0.1:{free_port()}",
        **extra,
    }


def rows(hive: RunningHive, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(hive.paths.db) as db:
        return list(db.execute(sql, args))


def request_apply(hive: RunningHive, name: str, extra: str) -> int:
    sha = commit_file(
        hive.paths.proposed_repo(name), "agent.toml", config_text(extra), f"change {name}"
    )
    with hive.manager() as m:
        return int(m.call("request_apply_commit", agent=name, commit_ref=sha)["id"])


def wait_sent(hive: RunningHive, timeout: float = 30.0) -> None:
    """Until nothing is queued in the outbox any more."""
    deadline = time.monotonic() + timeout
    while rows(hive, "SELECT count(*) FROM outbox WHERE state = 'queued'")[0][0]:
        assert time.monotonic() < deadline, rows(hive, "SELECT * FROM outbox")
        time.sleep(0.05)


def titled(messages: list[Got], text: str) -> list[Got]:
    return [m for m in messages if text in m.text]


def test_each_kind_reaches_a_json_webhook_and_an_ntfy_topic(
    env: dict[str, str], rx: Receiver
) -> None:
    """An approval (agent, kind, a summary of its diff), a question (its text and options), its
    reminder one minute before the deadline, a crash (the note) and a spending cap: each once
    on each channel, with an action link where there is something to decide."""
    e = notify_env(env, rx.json_url(), rx.ntfy_url("hive"))
    with running_hive(e) as hive, running_notify(e):
        spawn(hive, "alice")
        aid = request_apply(hive, "alice", 'model = "claude-opus-4-1"\n')
        got = rx.having(f"approval #{aid}", path="/hook")
        assert "alice" in got.title
        diff = rows(hive, "SELECT diff FROM approvals WHERE id = ?", aid)[0][0].splitlines()
        plus = [x for x in diff if x.startswith("+") and not x.startswith("+++")]
        minus = [x for x in diff if x.startswith("-") and not x.startswith("---")]
        assert f"{len(plus)} lines added, {len(minus)} removed" in got.message  # summed up
        assert '+model = "claude-opus-4-1"' in got.message
        assert len(got.links()) == 1 and "approve or deny" in got.message
        on_ntfy = rx.having(f"approval #{aid}", path="/")
        assert on_ntfy.topic == "hive" and len(on_ntfy.links()) == 1
        assert on_ntfy.links() != got.links()  # a link per channel: it names its channel

        with hive.manager() as m:
            qid = m.call(
                "ask_operator", question="ship on friday?", options=["yes", "no"], ttl_seconds=62
            )["id"]
        asked = rx.having(f"question #{qid}", path="/hook")
        assert "ship on friday?" in asked.message and "options: yes / no" in asked.message
        assert len(asked.links()) == 1 and "answer" in asked.message
        reminder = rx.having(f"one minute left for hm1nd's question #{qid}", path="/hook")
        assert reminder.at - asked.at >= 1.5  # due at the deadline less 60 s, not at once

        open_db(hive.paths.db)
        notify_manager(
            ContainerCrash(agent="alice", note="exit status 3\nlast line: boom"),
            hive.paths.doorbell,
            hive.paths.notify_doorbell,
        )
        crash = rx.having("alice crashed", path="/hook")
        assert "exit status 3" in crash.message and "boom" in crash.message
        assert crash.links() == []

        with write_tx():  # the spending cap's producer is still to come: its call, as it will be
            outbox.budget_reached("alice", 5.25, 5.0, "daily", "2026-05-01")
        ring_doorbell(hive.paths.notify_doorbell)
        cap = rx.having("alice reached its daily spending cap", path="/")
        assert "$5.25 of $5.00" in cap.message

        wait_sent(hive)
        for path in ("/hook", "/"):
            mine = [m for m in rx.messages if m.path == path]
            for text in (f"approval #{aid}", f"question #{qid}", "alice crashed", "daily"):
                assert len(titled(mine, text)) >= 1, (path, text)
        for path in ("/hook", "/"):  # one item → one notification per channel
            assert len(titled([m for m in rx.messages if m.path == path], "alice crashed")) == 1
        states = rows(hive, "SELECT kind, state FROM outbox ORDER BY id")
        assert states == [
            ("approval_waiting", "sent"),
            ("question_asked", "sent"),
            ("question_deadline", "sent"),
            ("container_crash", "sent"),
            ("budget_reached", "sent"),
        ]


def test_a_receiver_that_fails_then_recovers_loses_nothing_and_sends_nothing_twice(
    env: dict[str, str], rx: Receiver
) -> None:
    e = notify_env(env, rx.json_url())
    rx.fail_next(3)
    with running_hive(e) as hive, running_notify(e) as notifier:
        with hive.manager() as m:
            first = m.call("ask_operator", question="first?")["id"]
            rx.wait_for(lambda ms: len(rx.refused) >= 1, what="a refused try")
            second = m.call("ask_operator", question="second?")["id"]
            third = m.call("ask_operator", question="third?")["id"]
        wait_sent(hive)
        assert len(rx.refused) == 3  # failed three times…
        text = "\n".join(m.text for m in rx.messages)
        for qid in (first, second, third):  # …and each arrived exactly once afterwards
            assert text.count(f"question #{qid}") == 1, text
        tries = dict(
            rows(
                hive,
                "SELECT o.item_id, d.attempts FROM outbox_deliveries d "
                "JOIN outbox o ON o.id = d.item",
            )
        )
        for qid in (first, second, third):  # every try is counted: the refused ones, then one
            refused = [m for m in rx.refused if f"question #{qid}" in m.text]
            assert tries[qid] == len(refused) + 1, (qid, tries)
        assert tries[first] >= 2
        errors = rows(hive, "SELECT last_error FROM outbox_deliveries")
        assert all("error=500" in e for (e,) in errors), errors  # the cause is kept
        log = notifier.log()
    assert log.count("notifications to json (URL 1) failed") == 1, log  # logged once…
    assert "error=500" in log  # …with the cause
    assert log.count("notifications to json (URL 1) work again") == 1, log


def test_a_burst_goes_out_as_one_message(env: dict[str, str], rx: Receiver) -> None:
    e = notify_env(env, rx.json_url(), HIVE_NOTIFY_QUIET="1")
    with running_hive(e) as hive, running_notify(e):
        with hive.manager() as m:
            ids = [m.call("ask_operator", question=f"burst {i}?")["id"] for i in range(12)]
        wait_sent(hive)
        time.sleep(0.5)  # nothing else is on its way
        assert len(rx.messages) == 1, [m.title for m in rx.messages]
        burst = rx.messages[0]
        assert burst.title == "hyperhive: 12 notices"
        for qid in ids[:10]:
            assert f"question #{qid}" in burst.message
        assert len(burst.links()) == 10
        assert "… and 2 more: http://127.0.0.1:" in burst.message


def test_one_item_one_notification_across_restarts_and_repeated_inserts(
    env: dict[str, str], rx: Receiver
) -> None:
    e = notify_env(env, rx.json_url())
    with running_hive(e) as hive:
        with running_notify(e):
            open_db(hive.paths.db)
            for _ in range(3):  # the same notice queued three times: one row
                with write_tx():
                    outbox.container_crash("alice", "exit status 9", "run-7")
                ring_doorbell(hive.paths.notify_doorbell)
            rx.having("alice crashed")
            wait_sent(hive)
        with running_notify(e):  # a restart sends nothing again
            with write_tx():
                outbox.container_crash("bob", "exit status 1", "run-8")
            ring_doorbell(hive.paths.notify_doorbell)
            rx.having("bob crashed")
            wait_sent(hive)
        assert [m.title for m in rx.messages] == [
            "hyperhive: alice crashed",
            "hyperhive: bob crashed",
        ]
        assert rows(hive, "SELECT count(*) FROM outbox")[0][0] == 2


def test_hive_notify_events_narrows_and_a_resolved_item_is_moot(
    env: dict[str, str], rx: Receiver
) -> None:
    e = notify_env(env, rx.json_url(), HIVE_NOTIFY_EVENTS="container_crash question_asked")
    with running_hive(e) as hive:
        spawn(hive, "alice")
        aid = request_apply(hive, "alice", 'model = "claude-opus-4-1"\n')
        with hive.manager() as m:
            qid = m.call("ask_operator", question="answered before it is sent?")["id"]
        with hive.admin() as a:
            a.call("answer_question", id=qid, answer="yes")
        with running_notify(e):
            open_db(hive.paths.db)
            with write_tx():
                outbox.container_crash("alice", "exit status 2", "run-1")
            ring_doorbell(hive.paths.notify_doorbell)
            rx.having("alice crashed")
            wait_sent(hive)
        assert [m.title for m in rx.messages] == ["hyperhive: alice crashed"]
        states = dict(rows(hive, "SELECT kind, state || ': ' || coalesce(note, '') FROM outbox"))
        assert states["approval_waiting"] == "skipped: not in HIVE_NOTIFY_EVENTS"
        assert states["question_asked"] == f"moot: question #{qid} was answered before it was sent"
        assert aid


def test_without_a_public_url_notices_carry_no_link(env: dict[str, str], rx: Receiver) -> None:
    e = {**notify_env(env, rx.json_url()), "HIVE_WEB_PUBLIC_URL": ""}
    with running_hive(e) as hive, running_notify(e):
        with hive.manager() as m:
            qid = m.call("ask_operator", question="no link?", options=["a", "b"])["id"]
        got = rx.having(f"question #{qid}")
        assert got.links() == [] and "/act/" not in got.message
        assert rows(hive, "SELECT count(*) FROM action_links")[0][0] == 0


def test_notify_test_says_per_url_whether_it_worked(
    env: dict[str, str], rx: Receiver, tmp_path: Path
) -> None:
    dead = free_port()
    urls = f"{rx.json_url()} json://127.0.0.1:{dead}/nobody {rx.ntfy_url('t')} nonsense://x"
    out = hivectl({**env, "HIVE_NOTIFY_URLS": urls}, "notify-test")
    assert out.returncode == 1, out
    lines = out.stdout.splitlines()
    assert lines[0] == "URL 1 (json): ok"
    assert lines[1].startswith("URL 2 (json#2): failed: A Connection error occurred")
    assert lines[2] == "URL 3 (ntfy): ok"
    assert lines[3].startswith("URL 4 (nonsense): failed: URL 4 (nonsense) is not one apprise")
    assert "nonsense://x" not in out.stdout  # a URL is never printed (it may hold a token)
    assert lines[4] == "2 of 4 URLs work"
    assert len(titled(rx.messages, "test notification")) == 2
    env_file = tmp_path / "hive.env"
    env_file.write_text(f"HIVE_BACKEND=nspawn\nHIVE_NOTIFY_URLS='{rx.json_url()}'\n")
    out = hivectl(env, "notify-test", "--env-file", str(env_file))
    assert out.returncode == 0 and out.stdout.splitlines()[-1] == "1 of 1 URLs work", out
    none = hivectl(env, "notify-test", "--env-file", str(tmp_path / "absent.env"))
    assert none.returncode == 1 and "no HIVE_NOTIFY_URLS in" in none.stdout
