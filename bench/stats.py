"""The one way every benchmark summarises samples: nearest-rank percentiles, and honest labels.

Nearest rank never invents a value: every percentile is one of the samples. With fewer
than 100 samples p99 is simply the largest one, and the label says so.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path


def nearest_rank(values: Iterable[float], q: float) -> float:
    """The q-th percentile (0 < q ≤ 100) by nearest rank: the ⌈q/100·n⌉-th smallest sample."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    k = max(math.ceil(q / 100 * len(ordered)), 1)
    return ordered[min(k, len(ordered)) - 1]


def p99_label(values: Sequence[float]) -> str:
    """ "p99", or "max (= p99)" when there are too few samples for p99 to be anything else."""
    return "p99" if len(values) >= 100 else "max (= p99)"


def summary(values: Sequence[float]) -> dict[str, float]:
    """n, p50, p95, p99 and max of `values`."""
    return {
        "n": float(len(values)),
        "p50": nearest_rank(values, 50),
        "p95": nearest_rank(values, 95),
        "p99": nearest_rank(values, 99),
        "max": max(values) if values else math.nan,
    }


def publish(text: str, path: Path) -> None:
    """Print a benchmark's results and keep them at `path` (under bench/results, ignored by
    git) for docs/BENCHMARKS.md."""
    print(text)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")
