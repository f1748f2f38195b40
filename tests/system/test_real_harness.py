"""The real harness inside a real container: it reaches its socket, reports needs_login
while the model gateway has no key, and its structured line saying so reaches the
journal with HIVE_AGENT=."""

from __future__ import annotations

import time
from pathlib import Path

from hyperhive.hive.log import MESSAGE_IDS

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
        detail = row["turn"]["detail"]
        assert detail.startswith("the model gateway has no Anthropic API key: "), detail
        assert "/etc/hyperhive/credentials.env" in detail
        assert row["inbox"] >= 1  # its own `spawned` event waits until a key appears
        # the harness's own structured line, from its unit: HIVE_AGENT=, the turn's
        # MESSAGE_ID, priority warning, and the same sentence the operator sees
        query = (
            f"journalctl HIVE_AGENT=hm1nd MESSAGE_ID={MESSAGE_IDS['turn']} PRIORITY=4"
            " _SYSTEMD_UNIT=hive-agent@hm1nd.service --no-pager"
        )
        lines = host.sh(f"{query} -o cat").splitlines()
        assert f"needs login: {detail}" in lines, (detail, lines, host.sh(f"{query} -o verbose"))
