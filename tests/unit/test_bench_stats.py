"""The benchmarks' one percentile method: nearest rank, never beyond the samples."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from bench.stats import nearest_rank, p99_label, summary


def test_nearest_rank_on_known_samples() -> None:
    ten = [float(v) for v in range(1, 11)]
    assert nearest_rank(ten, 50) == 5.0
    assert nearest_rank(ten, 90) == 9.0
    assert nearest_rank(ten, 91) == 10.0
    assert nearest_rank(ten, 99) == 10.0
    hundred = [float(v) for v in range(1, 101)]
    assert nearest_rank(hundred, 99) == 99.0
    assert math.isnan(nearest_rank([], 50))


def test_with_fewer_than_100_samples_p99_is_the_maximum_and_says_so() -> None:
    fifteen = [0.2, 0.3, 0.25, 0.4, 0.9, 0.31, 0.27, 0.33, 0.29, 0.35, 0.3, 0.28, 0.26, 0.3, 0.5]
    assert nearest_rank(fifteen, 99) == max(fifteen)
    assert p99_label(fifteen) == "max (= p99)" and p99_label([0.0] * 100) == "p99"
    assert summary(fifteen)["p99"] == summary(fifteen)["max"]


@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1), st.floats(1, 100))
def test_a_percentile_is_always_one_of_the_samples(values: list[float], q: float) -> None:
    got = nearest_rank(values, q)
    assert got in values and min(values) <= got <= max(values)
