"""Fault injection under load in the booted sandbox host: kill -9 each service in turn while
messages, approvals and questions flow; nothing is lost, duplicated, stuck or reported twice.

The full-size run is `python -m bench.faults` (see docs/reliability.md).
"""

from __future__ import annotations

from bench import faults
from tests.system.hivehost import HiveHost


def test_kill_9_of_every_service_under_load_loses_nothing(host: HiveHost) -> None:
    faults.prepare(host)
    counts = faults.run(host, messages=3000, seconds=90, rounds=4, pause=1.5)
    print("\n" + faults.table(counts))
    assert counts["messages sent"] == 3000
    assert counts["messages lost"] == 0
    assert counts["messages delivered twice after an ack"] == 0
    assert counts["questions not resolved exactly once"] == 0
    assert counts["kills: hive-coordinator"] == 4
    assert counts[f"crashes reported ({faults.VICTIM})"] == 4
    assert counts["approvals"] > 0 and counts["questions"] > 0
