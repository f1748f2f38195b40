"""Broker benchmark: hyperhive's coordinator against the SQLite queues a user would otherwise pick.

`make bench` (`.venv/bin/python -m bench.broker`) starts a real coordinator process, creates
agents through its admin socket and moves every message through the real agent sockets.
In the same run, with the same harness, it drives persist-queue's `SQLiteAckQueue`, huey's
`SqliteHuey` with huey's own consumer, and a naive 5-second poll loop over a SQLite table.

What it measures for each system:

* latency, send → woken receiver: one sender, one receiver blocked in its receive call,
  1,000 messages spaced 2–6 ms apart (wake-up, not queueing). Each body carries the
  sender's `time.perf_counter_ns()` (CLOCK_MONOTONIC, one clock for every process on Linux);
  the receiver subtracts it from its own reading the moment the message is in its hands.
* throughput with 1, 10 and 50 receivers: 20,000 messages sent round-robin by 4 sender
  threads; unique messages delivered ÷ (last receipt − first send). Every message is
  counted: lost or duplicated ones are reported.
* latency to an idle consumer: ~40 messages at random times over ~30 s, all systems at once.
* idle CPU: 50 receivers blocked and no traffic; utime+stime of the broker over 10 s.

Processes: receivers are threads (blocking calls) in 2 processes, the 4 senders threads of a
third; with hyperhive the coordinator is a fourth, and all of them share the machine's cores.
The coordinator's agents get `HIVE_AGENT_COMMAND="sleep infinity"`: the benchmark's
receivers play the agents' harnesses, so no real harness competes for their inboxes.

The systems under test are in bench/broker_systems.py, the processes and threads that
drive them in bench/broker_runs.py; this module plans the runs and writes the tables.
The Markdown tables go to stdout and to bench/results/broker.md (git-ignored).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from bench.broker_runs import (
    IDLE_CPU_SECONDS,
    Outcome,
    Run,
    Spec,
    idle_cpu,
    log,
    run_concurrently,
    run_one,
)
from bench.broker_systems import Huey, Hyperhive, PersistQueue, PersistQueueXProc, PollLoop, System
from bench.stats import nearest_rank

DESCRIPTION = "Broker benchmark: hyperhive vs persist-queue, huey and a 5 s poll loop."
ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "broker.md"
PROFILE = ROOT / "bench" / "results" / "coordinator.prof"

LATENCY_COUNT = 1000
LATENCY_GAP = (0.002, 0.006)  # seconds between two latency probes (uniform)
THROUGHPUT_COUNT = 20_000
RECEIVER_COUNTS = (1, 10, 50)
SENDER_THREADS = 4
IDLE_SAMPLES = 40
IDLE_GAP = (0.2, 1.3)  # seconds between two probes sent to an idle consumer
IDLE_RECEIVERS = 50

# reporting -------------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    return nearest_rank(values, q)


def fmt_ms(v: float) -> str:
    if math.isnan(v):
        return "—"
    if v < 10:
        return f"{v:.2f} ms"
    if v < 1000:
        return f"{v:.0f} ms"
    return f"{v / 1000:.2f} s"


def fmt_rate(v: float | None) -> str:
    return "—" if v is None or v <= 0 else f"{v:,.0f}/s"


def fmt_ratio(v: float) -> str:
    if math.isnan(v) or math.isinf(v):
        return "—"
    return f"{v:,.0f}×" if v >= 100 else f"{v:.1f}×"


@dataclass
class Row:
    system: System
    latency: Outcome | None = None  # spaced probes, or idle probes for the slow pollers
    latency_from_idle: bool = False
    throughput: dict[int, Outcome] = field(default_factory=dict)
    idle_latency: Outcome | None = None
    idle_cpu: float | None = None

    def lat(self, q: float) -> float:
        return math.nan if self.latency is None else percentile(self.latency.latencies_ms(), q)

    def rate(self, receivers: int) -> float | None:
        o = self.throughput.get(receivers)
        return None if o is None else o.throughput


def machine() -> str:
    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    versions = ", ".join(f"{p} {metadata.version(p)}" for p in ("persist-queue", "huey", "peewee"))
    return (
        f"{os.cpu_count()} CPUs ({model}), Linux {platform.release()}, "
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, {versions}"
    )


def loadavg() -> str:
    with contextlib.suppress(OSError):
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return "?"


def source_rev(source: Path) -> str:
    """Which coordinator code ran: the commit, and whether services/ had uncommitted changes."""
    try:
        rev = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(source), "status", "--porcelain", "--", "services"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return f"{source} (not a git checkout)"
    return f"commit {rev}" + (" + uncommitted changes in services/" if dirty else "")


def exactness(row: Row) -> str:
    runs = list(row.throughput.values())
    if not runs:
        return ""
    if all(o.exact for o in runs):
        return f"each of {len(runs)}×{runs[0].spec.count:,} delivered exactly once"
    bad = [
        f"{o.spec.receivers} rcv: {o.missing} lost, {o.duplicates} dup"
        + (f", {len(o.errors)} errors" if o.errors else "")
        for o in runs
        if not o.exact
    ]
    return "NOT exact: " + "; ".join(bad)


def report(
    rows: list[Row], elapsed: float, throughput_count: int, latency_count: int, meta: str
) -> str:
    hive = rows[0]
    out: list[str] = []
    out.append(
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {elapsed:.0f} s in all. Machine: {machine()}."
        f" {meta}"
    )
    out.append("")
    out.append(
        f"Latency: {latency_count:,} probes, one sender, one blocked receiver, 2–6 ms apart "
        f"(¹ = the slow pollers: {IDLE_SAMPLES} probes at random times over ~30 s). "
        f"Throughput: {throughput_count:,} messages, {SENDER_THREADS} sender threads, "
        "round-robin over the receivers, unique messages ÷ (last receipt − first send)."
    )
    out.append("")
    cols = [f"msg/s, {n} rcv" for n in RECEIVER_COUNTS]
    out.append("| system | p50 latency | p99 latency | " + " | ".join(cols) + " | notes |")
    out.append("|---|---:|---:|" + "---:|" * len(cols) + "---|")
    for row in rows:
        mark = "¹" if row.latency_from_idle else ""
        notes = "; ".join(x for x in (row.system.note, exactness(row)) if x)
        cells = [fmt_rate(row.rate(n)) for n in RECEIVER_COUNTS]
        out.append(
            f"| {row.system.label} | {fmt_ms(row.lat(50))}{mark} | {fmt_ms(row.lat(99))}{mark} | "
            + " | ".join(cells)
            + f" | {notes} |"
        )
    out.append("")
    out.append(
        "Ratios, hyperhive vs each peer (latency: peer ÷ hyperhive; throughput: hyperhive ÷ "
        "peer; above 1× = hyperhive better):"
    )
    out.append("")
    out.append("| vs | p50 latency | p99 latency | " + " | ".join(cols) + " |")
    out.append("|---|---:|---:|" + "---:|" * len(cols))
    for row in rows[1:]:
        cells = []
        for n in RECEIVER_COUNTS:
            a, b = hive.rate(n), row.rate(n)
            cells.append(fmt_ratio(a / b) if a and b else "—")
        out.append(
            f"| {row.system.label} | {fmt_ratio(row.lat(50) / hive.lat(50))} | "
            f"{fmt_ratio(row.lat(99) / hive.lat(99))} | " + " | ".join(cells) + " |"
        )
    out.append("")
    out.append(
        f"Idle: latency of {IDLE_SAMPLES} probes sent at random times over ~30 s to an idle "
        f"consumer (all systems at once); CPU of the broker with {IDLE_RECEIVERS} receivers "
        f"blocked and no traffic, over {IDLE_CPU_SECONDS:.0f} s (% of one core; hyperhive: the "
        "coordinator; the others: the consumer process(es), which are their broker)."
    )
    out.append("")
    out.append("| system | idle p50 | idle p99 | idle max | idle CPU |")
    out.append("|---|---:|---:|---:|---:|")
    for row in rows:
        lat = [] if row.idle_latency is None else row.idle_latency.latencies_ms()
        cpu = "—" if row.idle_cpu is None else f"{row.idle_cpu:.2f} %"
        out.append(
            f"| {row.system.label} | {fmt_ms(percentile(lat, 50))} | {fmt_ms(percentile(lat, 99))} "
            f"| {fmt_ms(lat[-1] if lat else math.nan)} | {cpu} |"
        )
    out.append("")
    aims = [
        ("p50 < 2 ms", hive.lat(50) < 2),
        ("p99 < 10 ms", hive.lat(99) < 10),
        (
            f"≥ 5,000 msg/s (worst of {len(RECEIVER_COUNTS)})",
            min((hive.rate(n) or 0) for n in RECEIVER_COUNTS) >= 5000,
        ),
        ("idle CPU ≈ 0 (< 0.5 %)", hive.idle_cpu is not None and hive.idle_cpu < 0.5),
    ]
    out.append(
        "Aims for hyperhive: " + ", ".join(f"{a} {'✓' if ok else '✗'}" for a, ok in aims) + "."
    )
    out.append("")
    out.append("Details per run:")
    out.append("")
    out.append(
        "| system | run | receivers | sent | received once | lost | dup | wall | msg/s "
        "| p50 | p99 | broker CPU |"
    )
    out.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        outcomes = [row.latency, *row.throughput.values(), row.idle_latency]
        seen: set[int] = set()
        for o in outcomes:
            if o is None or id(o) in seen:
                continue
            seen.add(id(o))
            lat = o.latencies_ms()
            cpu = "—" if o.broker_cpu is None else f"{o.broker_cpu:.0f} %"
            out.append(
                f"| {row.system.key} | {o.spec.kind} | {o.spec.receivers} | {o.sent:,} | "
                f"{o.unique:,} | {o.missing} | {o.duplicates} | {o.wall:.1f} s | "
                f"{fmt_rate(o.throughput)} | {fmt_ms(percentile(lat, 50))} | "
                f"{fmt_ms(percentile(lat, 99))} | {cpu} |"
            )
    errors = [
        e
        for row in rows
        for o in (row.latency, *row.throughput.values(), row.idle_latency)
        if o
        for e in o.errors
    ]
    if errors:
        out.append("")
        out.append(f"{len(errors)} errors; the first: ```{errors[0].strip()}```")
    return "\n".join(out) + "\n"


# main ------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.broker", description=DESCRIPTION)
    ap.add_argument(
        "--count", type=int, default=THROUGHPUT_COUNT, help="messages per throughput run"
    )
    ap.add_argument("--latency-count", type=int, default=LATENCY_COUNT, help="latency probes")
    ap.add_argument("--only-hyperhive", action="store_true", help="skip the peers (for profiling)")
    ap.add_argument(
        "--profile",
        action="store_true",
        help=f"run the coordinator under cProfile, stats to {PROFILE.relative_to(ROOT)}",
    )
    ap.add_argument(
        "--source",
        type=Path,
        default=ROOT,
        help="run the coordinator from this checkout (default: this one), to compare commits",
    )
    ap.add_argument("--no-idle", action="store_true", help="skip the idle latency and CPU runs")
    args = ap.parse_args(argv)

    began = time.monotonic()
    load_before = loadavg()
    work = Path(tempfile.mkdtemp(prefix="hb-", dir="/tmp"))  # short: socket paths < 108 bytes
    if args.profile:
        PROFILE.parent.mkdir(parents=True, exist_ok=True)
    hive = Hyperhive(work, PROFILE if args.profile else None, args.source.resolve())
    rows = [Row(hive)]
    if not args.only_hyperhive:
        rows += [
            Row(PersistQueue(work / "pq")),
            Row(PersistQueueXProc(work / "pqx"), latency_from_idle=True),
            Row(Huey(work / "huey")),
            Row(PollLoop(work / "poll" / "poll.db"), latency_from_idle=True),
        ]
    try:
        hive.start()
        log(f"coordinator pid {hive.proc.pid if hive.proc else '?'} serving in {work}")
        spaced = Spec("latency", 1, args.latency_count, 1, LATENCY_GAP)
        for row in rows:
            if row.latency_from_idle:
                continue
            row.latency = run_one(row.system, spaced, "lat")
            log(f"{row.system.key} latency: p50 {fmt_ms(row.lat(50))} p99 {fmt_ms(row.lat(99))}")
        for n, tag in zip(RECEIVER_COUNTS, ("tpa", "tpb", "tpc"), strict=True):
            spec = Spec("throughput", n, args.count, SENDER_THREADS)
            for row in rows:
                if not row.system.throughput_runs:
                    continue
                o = run_one(row.system, spec, tag, measure_cpu=row.system is hive)
                row.throughput[n] = o
                log(
                    f"{row.system.key} throughput, {n} receivers: {fmt_rate(o.throughput)} "
                    f"({o.unique:,} once, {o.missing} lost, {o.duplicates} dup, "
                    f"{len(o.errors)} errors, {o.wall:.1f} s)"
                )
                if o.errors:
                    log(f"first error: {o.errors[0].strip()[-600:]}")
        if not args.no_idle:
            probes = Spec("idle-latency", 1, IDLE_SAMPLES, 1, IDLE_GAP)
            outcomes = run_concurrently([Run(row.system, probes, "slow") for row in rows])
            for row, o in zip(rows, outcomes, strict=True):
                row.idle_latency = o
                if row.latency_from_idle:
                    row.latency = o
                lat = o.latencies_ms()
                log(
                    f"{row.system.key} idle latency: p50 {fmt_ms(percentile(lat, 50))} "
                    f"max {fmt_ms(lat[-1] if lat else math.nan)}"
                )
            idle = Spec("idle-cpu", IDLE_RECEIVERS, 10**9, 0, deadline=IDLE_CPU_SECONDS + 30)
            cpu_rows = [row for row in rows if not isinstance(row.system, PersistQueueXProc)]
            cpus = idle_cpu([Run(row.system, idle, "idle") for row in cpu_rows])
            for row, cpu in zip(cpu_rows, cpus, strict=True):
                row.idle_cpu = cpu
                log(f"{row.system.key} idle CPU: {cpu:.2f} %")
    finally:
        hive.stop()
        shutil.rmtree(work, ignore_errors=True)

    meta = (
        f"Coordinator: {source_rev(args.source.resolve())}. Load average before/after: "
        f"{load_before} / {loadavg()} (anything else running shares the same cores)."
    )
    text = report(rows, time.monotonic() - began, args.count, args.latency_count, meta)
    print(text)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)
    if args.profile:
        import pstats

        pstats.Stats(str(PROFILE), stream=sys.stderr).sort_stats("cumulative").print_stats(40)
    return 0


if __name__ == "__main__":
    sys.exit(main())
