"""hive-notify's parts alone: settings, what a message says, the outbox's rules (one notice
per key, moot, skipped, expired, sent once every channel took it) and URLs kept out of text."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hyperhive.hive import outbox
from hyperhive.hive.channels import channels, parse_urls, redact
from hyperhive.hive.db import Approval, OperatorQuestion, OutboxItem, open_db, write_tx
from hyperhive.hive.vocab import Notice, OutboxState
from hyperhive.notify import compose, ledger
from hyperhive.notify.settings import NotifySettings, SettingsError, parse_events


@pytest.fixture
def db(tmp_path: Path) -> Iterator[None]:
    conn = open_db(tmp_path / "hive.db")
    yield
    conn.close()


def test_settings_read_the_environment_and_refuse_what_cannot_work(tmp_path: Path) -> None:
    s = NotifySettings.from_env(
        {
            "HIVE_STATE_DIR": str(tmp_path),
            "HIVE_NOTIFY_URLS": "json://a/b\n ntfys://ntfy.sh/topic ",
            "HIVE_NOTIFY_EVENTS": "container_crash, budget_reached",
        }
    )
    assert s.urls == ("json://a/b", "ntfys://ntfy.sh/topic")
    assert s.events == {Notice.CONTAINER_CRASH, Notice.BUDGET_REACHED}
    assert s.public_url is None
    assert parse_events(None) == frozenset(Notice) == parse_events("all")
    with pytest.raises(SettingsError, match="'crashes', which is not a notice"):
        parse_events("crashes")
    with pytest.raises(SettingsError, match="HIVE_NOTIFY_RETRY_FIRST"):
        NotifySettings.from_env({"HIVE_NOTIFY_RETRY_FIRST": "soon"})
    assert [s.backoff(n) for n in (1, 2, 3)] == [10.0, 20.0, 40.0]
    assert s.backoff(30) == 900.0  # capped


def test_urls_never_appear_in_what_is_said() -> None:
    url = "json://user:hunter2hunter@example.org/hooks/T0KENT0KENT0KEN?token=abcdefgh"
    said = redact(f"could not reach {url}: 401 for T0KENT0KENT0KEN (user hunter2hunter)", url)
    assert "hunter2hunter" not in said and "T0KENT0KENT0KEN" not in said and url not in said
    assert "abcdefgh" not in said
    (bad,) = channels(["nonsense://x"])
    assert bad.problem is not None and "nonsense://x" not in bad.problem
    assert bad.label == "nonsense" and bad.send("t", "b") == bad.problem
    labels = [c.label for c in channels(parse_urls("json://a/x json://b/y ntfy://c/z"))]
    assert labels == ["json", "json#2", "ntfy"]


def test_a_diff_is_summed_up_with_what_it_adds_first() -> None:
    diff = "\n".join(
        ["--- a", "+++ b", "@@ -1 +1 @@", "-# old comment", "-model = 'a'", "+model = 'b'"]
        + [f"+line {i}" for i in range(6)]
    )
    summary = outbox.diff_summary(diff)
    lines = summary.splitlines()
    assert lines[0] == "7 lines added, 2 removed"
    assert lines[1:5] == ["+model = 'b'", "+line 0", "+line 1", "+line 2"]
    assert lines[5] == "…" and lines[6] == "-model = 'a'"  # comments counted, not shown


def test_one_key_is_one_notice_and_a_reminder_waits_for_its_deadline(db: None) -> None:
    with write_tx():
        deadline = time.time() + 600
        q = OperatorQuestion.create(
            asker="hm1nd", question="go?", options='["yes", "no"]', deadline=deadline
        )
        outbox.question_asked(q)
        outbox.question_asked(q)  # again: nothing new
        outbox.container_crash("alice", "exit 1", "7")
        outbox.container_crash("alice", "exit 1", "7")
    rows = list(OutboxItem.select().order_by(OutboxItem.id))
    assert [(r.kind, r.key) for r in rows] == [
        ("question_asked", "question_asked:1"),
        ("question_deadline", "question_deadline:1"),
        ("container_crash", "container_crash:7"),
    ]
    assert rows[1].due_at == deadline - outbox.DEADLINE_NOTICE
    assert "options: yes / no" in rows[0].body
    assert ledger.next_due(rows[2].due_at) == rows[1].due_at  # after the ones due now
    soon = OperatorQuestion.create(asker="hm1nd", question="now?", deadline=None)
    with write_tx():
        outbox.question_asked(soon)  # no deadline: no reminder
    assert OutboxItem.select().where(OutboxItem.kind == Notice.QUESTION_DEADLINE).count() == 1


def test_settle_skips_unwanted_kinds_closes_resolved_items_and_gives_up_old_ones(
    db: None,
) -> None:
    a = Approval.create(agent="alice", kind="spawn", status="denied", diff="+x")
    with write_tx():
        outbox.approval_waiting(a)
        outbox.container_crash("alice", "exit 1", "1")
        outbox.container_crash("bob", "exit 1", "2")
        outbox.budget_reached("carol", 2.0, 1.0, "daily", "2026-05-01")
    items = ledger.due_items(1e12)
    OutboxItem.update(due_at=0).where(OutboxItem.agent == "bob").execute()
    items = ledger.due_items(1e12)
    wanted = frozenset({Notice.APPROVAL_WAITING, Notice.CONTAINER_CRASH})
    settled = ledger.settle(items, wanted, give_up=3600, t=items[-1].due_at + 1)
    assert [i.agent for i in settled.live] == ["alice"]
    assert [i.agent for i in settled.expired] == ["bob"]
    states = {(r.kind, r.agent): (r.state, r.note) for r in OutboxItem.select()}
    assert states[("approval_waiting", "alice")] == (
        OutboxState.MOOT,
        "approval #1 was denied before it was sent",
    )
    assert states[("budget_reached", "carol")] == (OutboxState.SKIPPED, "not in HIVE_NOTIFY_EVENTS")
    assert states[("container_crash", "bob")][0] == OutboxState.EXPIRED


def test_a_notice_is_sent_once_every_channel_took_it_and_a_failure_waits_its_turn(
    db: None,
) -> None:
    with write_tx():
        outbox.container_crash("alice", "exit 1", "1")
    (item,) = ledger.due_items(1e12)
    t = item.due_at + 1
    ledger.record_failed({item.id: 0}, "k-ntfy", "ntfy", "HTTP 500", {item.id: t + 10})
    ledger.record_sent([item.id], "k-json", "json", ["k-json", "k-ntfy"], t)
    assert OutboxItem.get_by_id(item.id).state == OutboxState.QUEUED  # ntfy has not taken it
    assert ledger.plan([item], "k-json", t) == ([], None)  # never twice on json
    assert ledger.plan([item], "k-ntfy", t) == ([], t + 10)  # ntfy: at its retry time
    due, _ = ledger.plan([item], "k-ntfy", t + 10)
    assert [(d.item.id, d.attempts) for d in due] == [(item.id, 1)]
    assert ledger.record_sent([item.id], "k-ntfy", "ntfy", ["k-json", "k-ntfy"], t + 10) == [
        item.id
    ]
    assert OutboxItem.get_by_id(item.id).state == OutboxState.SENT
    assert ledger.prune(t + 10 + ledger.KEEP_DONE + 1) == 1


def test_a_message_lists_a_burst_with_each_link_and_counts_the_rest(db: None) -> None:
    with write_tx():
        for n in range(3):
            outbox.container_crash(f"a{n}", f"exit {n}", str(n))
        q = OperatorQuestion.create(asker="hm1nd", question="go?", options='["yes"]')
        outbox.question_asked(q)
    items = ledger.due_items(1e12)
    crash, question = items[0], items[3]
    one = compose.message([question], 0, {int(question.id): ("https://h/act/S", 86400)}, None)
    assert one.title == "hyperhive: hm1nd asks (question #1): go?"
    assert one.body.endswith("→ answer (one use, 24 h): https://h/act/S")
    assert not one.urgent
    alone = compose.message([crash], 0, {}, "https://h")
    assert alone.urgent and "act/" not in alone.body
    burst = compose.message(items[:2], 2, {}, "https://h")
    assert burst.title == "hyperhive: 4 notices"
    assert burst.body.startswith("• a0 crashed\n  exit 0\n\n• a1 crashed")
    assert burst.body.endswith("… and 2 more: https://h/")
