"""Spawn benchmark: N agents spawned together until all run, and a restart that starts them again.

`.venv/bin/python -m bench.spawn` starts a real coordinator (process backend, payload
`sleep infinity`, a fresh state dir), waits for hm1nd, then sends `spawn {name, wait:
false}` for N agents (default 100) back to back on one admin connection and waits (with the
admin `watch`, no polling) until every one of them is running or failed. Meanwhile a probe
sends `whoami` on a second admin connection every 50 ms: its round trip shows whether the
event loop was held by per-agent work. Then it stops the coordinator and starts it again
on the same state: the time to serving, with every agent started again. Each round uses a
fresh state dir; the table has one row per round.

`--source DIR` runs the coordinator from another checkout (to compare commits).
The Markdown table goes to stdout and to bench/results/spawn.md (git-ignored).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shutil
import signal
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from hyperhive.hive.client import HiveClient

from bench.host import loadavg, source_rev
from bench.source import environ
from bench.stats import nearest_rank
from tests.hivetest import RunningHive, hive_env, reap_agents

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "spawn.md"
COUNT = 100
PROBE_EVERY = 0.05
SETTLE_TIMEOUT = 600.0


class SlowStartHive(RunningHive):
    def _wait_ready(self, timeout: float = SETTLE_TIMEOUT) -> None:
        super()._wait_ready(timeout)


def cpu_seconds(pid: int) -> float:
    """utime + stime of `pid` and its reaped children (/proc/<pid>/stat), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


class Probe:
    """`whoami` round trips on an admin connection of its own, every PROBE_EVERY seconds."""

    def __init__(self, hive: RunningHive) -> None:
        self.client = HiveClient(hive.paths.admin_socket, timeout=60)
        self.ms: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(PROBE_EVERY):
            t = time.perf_counter()
            self.client.call("whoami")
            self.ms.append((time.perf_counter() - t) * 1000)

    def stop(self) -> list[float]:
        self._stop.set()
        self._thread.join(60)
        self.client.close()
        return self.ms


def settled(admin: HiveClient, names: set[str]) -> tuple[int, list[str]]:
    """Block (admin `watch`) until none of `names` is spawning; (running, failure notes)."""
    after = -1
    while True:
        rows = [r for r in admin.call("list")["agents"] if r["name"] in names]
        if len(rows) == len(names) and all(r["state"] != "spawning" for r in rows):
            running = sum(r["state"] == "running" for r in rows)
            return running, [str(r["note"]) for r in rows if r["state"] == "failed"]
        after = int(admin.call("watch", after=after, wait_seconds=30)["changes"])


def one_round(count: int, source: Path | None) -> dict[str, object]:
    root = Path(tempfile.mkdtemp(prefix="hive-bench-spawn-"))
    env = environ(hive_env(root), source)
    hive: RunningHive | None = None
    try:
        hive = SlowStartHive(env)
        names = {f"agent-{i:04d}" for i in range(count)}
        with hive.admin() as admin:
            settled(admin, {"hm1nd"})
            probe = Probe(hive)
            cpu0 = cpu_seconds(hive.proc.pid)
            t0 = time.perf_counter()
            for name in sorted(names):
                admin.call("spawn", name=name, wait=False)
            asked = time.perf_counter() - t0
            running, failed = settled(admin, names)
            took = time.perf_counter() - t0
            cpu = cpu_seconds(hive.proc.pid) - cpu0
            probes = probe.stop()
        hive.stop()
        t1 = time.perf_counter()
        hive = SlowStartHive(env)
        with hive.admin() as admin:
            settled(admin, names)
            rows = {r["name"]: r["state"] for r in admin.call("list")["agents"]}
        restart = time.perf_counter() - t1
        again = sum(rows.get(n) == "running" for n in names)
        return {
            "asked": asked,
            "took": took,
            "running": running,
            "failed": failed,
            "cpu": cpu,
            "probe_p50": nearest_rank(probes, 50),
            "probe_max": max(probes) if probes else float("nan"),
            "probes": len(probes),
            "restart": restart,
            "again": again,
        }
    finally:
        if hive is not None:
            hive.stop()
        reap_agents(env["HIVE_RUNTIME_DIR"])
        shutil.rmtree(env["HIVE_RUNTIME_DIR"], ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=COUNT, help="agents spawned together")
    parser.add_argument("--rounds", type=int, default=3, help="fresh hives, one after another")
    parser.add_argument("--source", type=Path, help="run the coordinator from this checkout")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the hive on the way out
    began = datetime.now(UTC)
    load_before = loadavg()
    rounds = [one_round(args.count, args.source) for _ in range(args.rounds)]
    lines = [
        f"Run {began:%Y-%m-%d %H:%M} UTC, coordinator {source_rev(args.source or ROOT)}; "
        f"load average before/after: {load_before} / {loadavg()}; "
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} cores.",
        "",
        f"| round | {args.count} `spawn` requests answered | all settled | running | failed "
        "| coordinator CPU | `whoami` during the burst: n, p50, max | restart: serving, all "
        "running again |",
        "|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for i, r in enumerate(rounds, 1):
        lines.append(
            f"| {i} | {r['asked']:.2f} s | {r['took']:.2f} s | {r['running']} "
            f"| {len(r['failed'])} | {r['cpu']:.1f} s | {r['probes']}, "  # type: ignore[arg-type]
            f"{r['probe_p50']:.1f} ms, {r['probe_max']:.0f} ms "
            f"| {r['restart']:.2f} s ({r['again']} running) |"
        )
    notes = sorted({n for r in rounds for n in r["failed"]})  # type: ignore[attr-defined]
    if notes:
        lines += ["", "Failures (distinct notes):", *(f"* {n}" for n in notes[:10])]
    text = "\n".join(lines)
    print(text)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        RESULTS.write_text(text + "\n")


if __name__ == "__main__":
    main()
