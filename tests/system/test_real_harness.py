"""The real harness inside a real container: it reaches its socket, reports needs_login
without a key, and its structured lines reach the journal with HIVE_AGENT=."""

from __future__ import annotations

import time
from pathlib import Path

from tests.system.hivehost import booted_hive


def test_the_manager_harness_runs_in_its_container(tmp_path: Path) -> None:
    with booted_hive(tmp_path, settings={}) as host:
        deadline = time.monotonic() + 60
        while True:
            row = host.hivectl("status", "hm1nd")["agents"][0]
            if row["needs_login"]:
                break
            assert time.monotonic() < deadline, row
            time.sleep(0.5)
        assert row["state"] == "running" and row["turn"]["state"] == "needs_login"
        assert row["inbox"] >= 1  # its own `spawned` event waits until a key appears
        lines = host.sh("journalctl HIVE_AGENT=hm1nd -o cat --no-pager")
        assert "needs_login" in lines or "key" in lines.lower(), lines
        verbose = host.sh("journalctl HIVE_AGENT=hm1nd -o verbose --no-pager")
        assert "_SYSTEMD_UNIT=hive-agent@hm1nd.service" in verbose
