"""Benchmark: approve → container running with the new config, and each service's RSS and idle
CPU, in a booted sandbox systemd host with the hive installed (nspawn backend).

Run: .venv/bin/python -m bench.lifecycle   (as root; about a minute)
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from bench.stats import nearest_rank, p99_label
from tests.system.hivehost import HiveHost, booted_hive

APPROVALS = 15
IDLE_SECONDS = 10.0
SERVICES = ("hive-coordinator.service", "hive-crashwatch.service", "hive-web.service")
SPAWNED = ("alice", "bob", "carol", "dave")  # besides the manager hm1nd, which the hive creates


def approve_to_running(host: HiveHost, n: int) -> list[float]:
    times = []
    for i in range(n):
        sha = host.commit_config("alice", f'system_prompt = "x"\n[environment]\nROUND = "{i}"\n')
        req = host.call(
            "/run/hyperhive/manager/hive.sock",
            "request_apply_commit",
            agent="alice",
            commit_ref=sha,
        )
        t0 = time.perf_counter()
        reply = host.call("/run/hyperhive/host.sock", "approve", id=req["id"])
        elapsed = time.perf_counter() - t0
        assert reply["approval"]["status"] == "approved", reply
        assert host.environ(host.payload_pid("h-alice"))["ROUND"] == str(i)
        times.append(elapsed)
    return times


def _ticks(host: HiveHost, pid: str) -> int:
    fields = host.sh(f"cat /proc/{pid}/stat").rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def idle_usage(host: HiveHost) -> dict[str, tuple[float, float]]:
    pids = {
        u: host.unit_prop(u, "MainPID")
        for u in SERVICES
        if host.unit_prop(u, "ActiveState") == "active"
    }
    pids = {u: p for u, p in pids.items() if p not in ("", "0")}
    hz = int(host.sh("getconf CLK_TCK").strip())
    before = {u: _ticks(host, p) for u, p in pids.items()}
    time.sleep(IDLE_SECONDS)
    out = {}
    for unit, pid in pids.items():
        cpu = (_ticks(host, pid) - before[unit]) / hz / IDLE_SECONDS * 100
        rss_kb = int(host.sh(f"grep VmRSS /proc/{pid}/status").split()[1])
        out[unit] = (rss_kb / 1024, cpu)
    return out


def main() -> None:
    with (
        tempfile.TemporaryDirectory() as tmp,
        booted_hive(Path(tmp), settings={"HIVE_AGENT_COMMAND": "/bin/sleep infinity"}) as host,
    ):
        for name in SPAWNED:
            host.hivectl("spawn", name)
        times = approve_to_running(host, APPROVALS)
        usage = idle_usage(host)
    print("| measure | value |")
    print("|---|---|")
    what = "approve → container running with the new config"
    print(f"| {what}, p50 | {nearest_rank(times, 50) * 1000:.0f} ms |")
    print(f"| {what}, {p99_label(times)} of {len(times)} | {max(times) * 1000:.0f} ms |")
    print()
    containers = f"{len(SPAWNED)} agents + hm1nd"
    print(f"| service ({containers}, idle {IDLE_SECONDS:.0f} s) | RSS | CPU |")
    print("|---|---|---|")
    for unit, (rss, cpu) in usage.items():
        print(f"| {unit} | {rss:.1f} MiB | {cpu:.2f} % |")


if __name__ == "__main__":
    main()
