"""The cancel token: aborts run once, even for a step that starts after the cancel."""

from __future__ import annotations

import pytest
from hyperhive.agent.cancel import Cancelled, CancelToken


def test_aborts_of_running_steps_run_on_cancel_and_are_then_forgotten() -> None:
    token = CancelToken()
    ran: list[str] = []
    with token.on_cancel(lambda: ran.append("stream")):
        token.cancel()
        token.cancel()  # a second cancel does nothing more
    assert ran == ["stream"]
    with pytest.raises(Cancelled):
        token.check()


def test_a_step_started_after_the_cancel_is_aborted_at_once() -> None:
    token = CancelToken()
    token.cancel()
    ran: list[str] = []
    with token.on_cancel(lambda: ran.append("tool")):
        assert ran == ["tool"]
    with pytest.raises(Cancelled):
        token.sleep(30)  # returns at once


def test_a_failing_abort_does_not_stop_the_others() -> None:
    token = CancelToken()
    ran: list[str] = []

    def broken() -> None:
        raise OSError("already closed")

    with token.on_cancel(broken), token.on_cancel(lambda: ran.append("second")):
        token.cancel()
    assert ran == ["second"] and token.cancelled
