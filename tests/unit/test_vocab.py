"""The vocabularies: each word once, with its behaviour beside it."""

from __future__ import annotations

from hyperhive.hive.vocab import AgentState, ApprovalStatus, Code, TurnPhase, Verb


def test_verbs_say_what_they_did_and_who_may_use_them() -> None:
    assert [v.done for v in Verb] == [
        "started", "stopped", "restarted", "killed", "destroyed", "rebuilt"
    ]  # fmt: skip
    assert {v for v in Verb if v.manager_may} == {Verb.START, Verb.RESTART, Verb.KILL}


def test_states_and_statuses_carry_their_rules() -> None:
    assert (
        AgentState.of("running") is AgentState.RUNNING and AgentState.of("?") is AgentState.STOPPED
    )
    assert not AgentState.SPAWNING.rebuildable and AgentState.FAILED.rebuildable
    assert {s for s in ApprovalStatus if s.open} == {
        ApprovalStatus.PENDING,
        ApprovalStatus.APPLYING,
    }
    assert not TurnPhase.IDLE.busy and TurnPhase.ERROR.busy and not TurnPhase.NEEDS_LOGIN.busy
    assert {p for p in TurnPhase if p.blocked} == {TurnPhase.NEEDS_LOGIN, TurnPhase.CAPPED}
    assert not TurnPhase.CAPPED.busy


def test_codes_map_to_one_status_each() -> None:
    assert {c.http_status for c in Code} == {400, 403, 404, 409, 503, 500}
    assert Code.of("stale") is Code.STALE and Code.of("made-up") is Code.CONFLICT
    assert all(c.exit_status == 1 for c in Code)
