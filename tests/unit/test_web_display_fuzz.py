"""Property-based: every display helper turns any value an agent can report into text."""

from __future__ import annotations

from hyperhive.web import display, views
from hypothesis import example, given
from hypothesis import strategies as st

finite = st.floats(allow_nan=False, allow_infinity=False)
counts = st.integers(min_value=0, max_value=2**62)


@given(ts=st.none() | finite | st.integers(min_value=-(2**63), max_value=2**63))
def test_clock_never_raises(ts: float | None) -> None:
    assert isinstance(display.clock(ts), str)


def test_clock_of_a_timestamp_out_of_range_is_a_dash() -> None:
    assert display.clock(1e308) == "—" and display.clock(-1e308) == "—"


@given(
    started=st.none() | finite,
    ended=st.none() | finite,
    tokens=counts,
    cost=st.floats(min_value=0, allow_nan=False, allow_infinity=False),
    state=st.text(max_size=20),
)
@example(started=-1.7976931348623157e308, ended=1e292, tokens=0, cost=0.0, state="")  # inf took
def test_turn_view_shapes_any_reported_turn(
    started: float | None, ended: float | None, tokens: int, cost: float, state: str
) -> None:
    turn = {
        "state": state,
        "started_at": started,
        "ended_at": ended,
        "input_tokens": tokens,
        "output_tokens": tokens,
        "cached_tokens": tokens,
        "cost_usd": cost,
        "updated_at": 0.0,
    }
    view = views.turn_view(turn)
    assert view is not None
    assert all(isinstance(view[k], str) for k in ("started_clock", "ended_clock", "tokens", "cost"))
