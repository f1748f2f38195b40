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
    assert {p for p in TurnPhase if p.blocked} == {TurnPhase.NEEDS_LOGIN, TurnPhase.OVER_BUDGET}
    assert not TurnPhase.OVER_BUDGET.busy


def test_codes_map_to_one_status_each() -> None:
    assert {c.http_status for c in Code} == {400, 403, 404, 409, 503, 500}
    assert Code.of("stale") is Code.STALE and Code.of("made-up") is Code.CONFLICT
    assert all(c.exit_status == 1 for c in Code)


def test_notices_and_links_say_what_they_act_on() -> None:
    from hyperhive.hive.vocab import LinkAction, LinkItem, LinkState, Notice

    assert {n: n.item for n in Notice} == {
        Notice.APPROVAL_WAITING: LinkItem.APPROVAL,
        Notice.QUESTION_ASKED: LinkItem.QUESTION,
        Notice.QUESTION_DEADLINE: LinkItem.QUESTION,
        Notice.CONTAINER_CRASH: None,
        Notice.BUDGET_REACHED: LinkItem.BUDGET,
    }
    assert {n for n in Notice if n.urgent} == {
        Notice.CONTAINER_CRASH,
        Notice.BUDGET_REACHED,
        Notice.QUESTION_DEADLINE,
    }
    assert LinkItem.APPROVAL.actions == (LinkAction.APPROVE, LinkAction.DENY)
    assert LinkItem.QUESTION.actions == (LinkAction.ANSWER,)
    assert LinkItem.BUDGET.actions == (LinkAction.RAISE, LinkAction.RESET)
    assert [a.done for a in LinkAction] == ["approved", "denied", "answered", "raised", "reset"]
    assert LinkItem.BUDGET.offer == "raise the cap or reset the count"
    assert {s for s in LinkState if s.usable} == {LinkState.OPEN, LinkState.STALE}
    assert LinkState.UNKNOWN.code is Code.FORBIDDEN and LinkState.USED.code is Code.CONFLICT
    assert LinkState.CHANGED.code is Code.STALE and LinkState.GONE.code is Code.NOT_FOUND
