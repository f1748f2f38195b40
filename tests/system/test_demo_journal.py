"""The demo's journal outlives the demo, and `hivectl logs` reads it from outside the sandbox."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from hyperhive.sandbox.host import SandboxHost

from tests.hivetest import REPO

PY = str(REPO / ".venv" / "bin" / "python")


def boot_and_log(tmp: Path, journal: Path, line: str) -> None:
    sandbox = SandboxHost(
        f"hive-journal-{os.getpid()}-{time.monotonic_ns() % 100000}",
        binds=[REPO],
        log_path=tmp / f"sandbox-{line}.log",
        journal=journal,
    )
    sandbox.boot()
    try:
        code = f"from systemd import journal; journal.send({line!r}, HIVE_AGENT='alice')"
        sandbox.run(PY, "-c", code, env={"PYTHONPATH": str(REPO)})
        sandbox.run("journalctl", "--flush")
        sandbox.run("journalctl", "--sync")
    finally:
        sandbox.poweroff()


def test_hivectl_logs_reads_the_kept_journal_of_two_demo_runs(tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    boot_and_log(tmp_path, journal, "said in the first run")
    boot_and_log(tmp_path, journal, "said in the second run")
    out = subprocess.run(
        [sys.executable, "-m", "hyperhive.cli", "logs", "alice"],
        env={**os.environ, "HIVE_JOURNAL_DIR": str(journal), "PYTHONPATH": str(REPO)},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "said in the first run" in out.stdout and "said in the second run" in out.stdout
    assert len(list(journal.iterdir())) == 1  # one machine id, so one journal across boots
