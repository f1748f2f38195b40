"""Operator questions: answer, cancel and TTL each resolve exactly once, races included (in
process); a pending question outlives a restart of the coordinator process."""

from __future__ import annotations

import threading
import time

import pytest
from hyperhive.hive.client import Refused
from hyperhive.hive.db import Notification, OperatorQuestion, open_db
from hyperhive.hive.paths import Paths

from tests.hivetest import Hive, running_hive
from tests.inproc import InProcessHive
from tests.integration.flowtools import manager_events, wait_for_event


def ask(hive: Hive, **fields: object) -> int:
    return int(hive.manager("ask_operator", **fields)["id"])


def test_answer(inproc: InProcessHive) -> None:
    manager_events(inproc)
    qid = ask(inproc, question="deploy now?", options=["yes", "no"])
    with inproc.admin() as a:
        listed = a.call("questions")["questions"]
        assert listed[0]["id"] == qid and listed[0]["options"] == ["yes", "no"]
        assert listed[0]["asker"] == "hm1nd" and listed[0]["deadline"] is None
        with pytest.raises(Refused, match="one of the options"):
            a.call("answer_question", id=qid, answer="maybe")
    answered = inproc.admin("answer_question", id=qid, answer="yes")["question"]
    assert answered["status"] == "answered" and answered["answer"] == "yes"
    assert manager_events(inproc) == [
        {"event": "operator_answered", "id": qid, "question": "deploy now?", "answer": "yes"}
    ]
    with inproc.admin() as a:
        assert a.call("questions")["questions"] == []
        with pytest.raises(Refused, match=f"question #{qid} is already resolved \\(answered\\)"):
            a.call("cancel_question", id=qid)


def test_multi_choice_and_free_text(inproc: InProcessHive) -> None:
    multi = ask(inproc, question="which?", options=["a", "b", "c"], multi=True)
    free = ask(inproc, question="why?")
    with inproc.admin() as a:
        assert (
            a.call("answer_question", id=multi, answer=["a", "c"])["question"]["answer"] == "a, c"
        )
        assert (
            a.call("answer_question", id=free, answer="because")["question"]["answer"] == "because"
        )
    with inproc.manager() as m:
        with pytest.raises(Refused, match="needs options"):
            m.call("ask_operator", question="x", multi=True)
        with pytest.raises(Refused, match="ttl_seconds"):
            m.call("ask_operator", question="x", ttl_seconds=0)


def test_cancel_and_expiry(inproc: InProcessHive) -> None:
    manager_events(inproc)
    cancelled = ask(inproc, question="cancel me")
    assert inproc.admin("cancel_question", id=cancelled)["question"]["status"] == "cancelled"
    expiring = ask(inproc, question="quick!", ttl_seconds=1)
    with inproc.admin() as a:
        q = a.call("questions")["questions"][0]
        assert q["id"] == expiring and q["deadline"] > time.time()
    event = wait_for_event(inproc, "operator_answered")
    assert event == {
        "event": "operator_answered",
        "id": cancelled,
        "question": "cancel me",
        "answer": "[cancelled]",
    }
    event = wait_for_event(inproc, "operator_answered")
    assert event == {
        "event": "operator_answered",
        "id": expiring,
        "question": "quick!",
        "answer": "[expired]",
    }
    with inproc.admin() as a:
        statuses = {q["id"]: q["status"] for q in a.call("questions", all=True)["questions"]}
    assert statuses[cancelled] == "cancelled" and statuses[expiring] == "expired"
    # the notes row of the dashboard says what happened (the database is open in this process)
    notes = {n.text for n in Notification.select().where(Notification.kind == "operator_answered")}
    assert notes == {f"question #{cancelled} cancelled", f"question #{expiring} expired"}


def test_a_sub_agent_gets_its_own_answer(inproc: InProcessHive) -> None:
    with inproc.admin() as a:
        a.call("spawn", name="alice")
    with inproc.agent("alice") as c:
        qid = c.call("ask_operator", question="may I?")["id"]
    with inproc.admin() as a:
        a.call("answer_question", id=qid, answer="yes")
    with inproc.agent("alice") as c:
        msg = c.call("recv", wait_seconds=5)["message"]
    assert msg["sender"] == "system" and '"answer":"yes"' in msg["body"]


@pytest.mark.parametrize("round_", range(3))
def test_answer_cancel_and_expiry_race(inproc: InProcessHive, round_: int) -> None:
    """Many questions, each raced by an answer, a cancel and its TTL: one winner each."""
    manager_events(inproc)
    ids = [ask(inproc, question=f"race {i}", ttl_seconds=1) for i in range(30)]
    outcomes: dict[int, list[str]] = {i: [] for i in ids}
    lock = threading.Lock()

    def resolve(cmd: str, **extra: object) -> None:
        with inproc.admin() as a:
            time.sleep(0.98)
            for qid in ids:
                try:
                    a.call(cmd, id=qid, **extra)
                    with lock:
                        outcomes[qid].append(cmd)
                except Refused as e:
                    assert "already resolved" in str(e)

    threads = [
        threading.Thread(target=resolve, args=("answer_question",), kwargs={"answer": "yes"}),
        threading.Thread(target=resolve, args=("cancel_question",)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    deadline = time.monotonic() + 60  # whatever is left expires on the coordinator's timer
    with inproc.admin() as a:
        while {q["id"] for q in a.call("questions")["questions"]} & set(ids):
            assert time.monotonic() < deadline, "a 1 s TTL had not fired after 60 s"
            time.sleep(0.1)
    events = [e for e in manager_events(inproc) if e["event"] == "operator_answered"]
    per_id: dict[int, int] = {}
    for e in events:
        per_id[e["id"]] = per_id.get(e["id"], 0) + 1
    assert per_id == {qid: 1 for qid in ids}
    for qid in ids:
        assert len(outcomes[qid]) <= 1
    with inproc.admin() as a:
        final = {q["id"]: q for q in a.call("questions", all=True)["questions"]}
    for e in events:
        q = final[e["id"]]
        assert q["answer"] == e["answer"]
        assert {"yes": "answered", "[cancelled]": "cancelled", "[expired]": "expired"}[
            e["answer"]
        ] == q["status"]


def test_pending_question_survives_a_restart_and_a_passed_deadline_expires_on_start(
    env: dict[str, str],
) -> None:
    with running_hive(env) as hive:
        manager_events(hive)
        keep = ask(hive, question="still there?")
        lapse = ask(hive, question="soon gone", ttl_seconds=60)
    open_db(Paths.from_env(env).db)
    OperatorQuestion.update(deadline=time.time() - 5).where(OperatorQuestion.id == lapse).execute()
    with running_hive(env) as hive:
        event = wait_for_event(hive, "operator_answered")
        assert event["id"] == lapse and event["answer"] == "[expired]"
        with hive.admin() as a:
            assert [q["id"] for q in a.call("questions")["questions"]] == [keep]
            a.call("answer_question", id=keep, answer="yes")
