"""HelperEvent: every variant survives a JSON round trip; bad bodies are refused clearly."""

from __future__ import annotations

import json

import pytest
from hyperhive.hive import events as ev

SAMPLES: list[ev.HelperEvent] = [
    ev.ApprovalResolved(id=3, agent="alice", commit_ref="abc123", status="approved", note=None),
    ev.ApprovalResolved(id=4, agent="bob", commit_ref=None, status="denied", note="too broad"),
    ev.Spawned(agent="alice", ok=True, note=None),
    ev.Spawned(agent="bob", ok=False, note="nspawn failed"),
    ev.Rebuilt(agent="alice", ok=True),
    ev.Killed(agent="alice"),
    ev.Destroyed(agent="alice"),
    ev.ContainerCrash(agent="alice", note="exit 137"),
    ev.OperatorAnswered(id=7, question="ok?", answer="yes"),
    ev.BudgetReached(
        agent="alice",
        spent_usd=5.25,
        cap_usd=5.0,
        period="daily",
        since="2026-11-29T00:00:00+00:00",
    ),
]


def test_every_variant_has_a_sample() -> None:
    assert {type(s).event for s in SAMPLES} == set(ev.VARIANTS)
    assert len(ev.VARIANTS) == 8  # the seed's seven and budget_reached


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: e.event)
def test_round_trip(event: ev.HelperEvent) -> None:
    text = event.to_json()
    assert json.loads(text)["event"] == event.event
    assert ev.from_json(text) == event


def test_wire_shape_matches_protocol() -> None:
    assert json.loads(SAMPLES[0].to_json()) == {
        "event": "approval_resolved",
        "id": 3,
        "agent": "alice",
        "commit_ref": "abc123",
        "status": "approved",
        "note": None,
    }


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("nope", "not JSON"),
        ("[]", "not a JSON object"),
        ('{"event": "exploded"}', "unknown helper event"),
        ('{"agent": "a"}', "unknown helper event"),
        ('{"event": "killed"}', "lacks field 'agent'"),
        ('{"event": "killed", "agent": 3}', "wrong type"),
        ('{"event": "spawned", "agent": "a", "ok": 1}', "wrong type"),
        (
            '{"event": "operator_answered", "id": true, "question": "q", "answer": "a"}',
            "wrong type",
        ),
    ],
)
def test_bad_bodies(body: str, fragment: str) -> None:
    with pytest.raises(ev.EventError, match=fragment):
        ev.from_json(body)
