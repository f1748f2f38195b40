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
  threads; unique messages delivered ÷ (last receipt − first send).
* exactly once, after every run: each receiver drains its inbox with a last non-blocking
  receive once all senders are done; message `seq` must have reached receiver
  `seq % receivers`, once. Lost, duplicated and misdelivered messages are counted per run.
* latency to an idle consumer: ~40 messages at random times over ~30 s, all systems at once.
* idle CPU: 50 receivers blocked and no traffic; utime+stime of the broker over 10 s.

Durability is like for like: the headline runs every system with `PRAGMA synchronous=NORMAL`
(the hive's default) on every SQLite connection it opens, and a second, smaller comparison
runs them all at FULL (`HIVE_DB_SYNCHRONOUS=full` for the coordinator). The level is read
back from SQLite on every peer connection, and from `open_db` under the coordinator's
environment, and printed beside each system.

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
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from hyperhive.hive.db import Synchronous

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
from bench.broker_systems import (
    SYNC_NAMES,
    Huey,
    HueyFastPoll,
    Hyperhive,
    PersistQueue,
    PersistQueueXProc,
    PollLoop,
    System,
)
from bench.host import loadavg, source_rev
from bench.stats import nearest_rank

DESCRIPTION = "Broker benchmark: hyperhive vs persist-queue, huey and a 5 s poll loop."
ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "broker.md"
PROFILE = ROOT / "bench" / "results" / "coordinator.prof"

LATENCY_COUNT = 1000
LATENCY_GAP = (0.002, 0.006)  # seconds between two latency probes (uniform)
THROUGHPUT_COUNT = 20_000
FULL_COUNT = 5_000  # messages per throughput run of the smaller comparison at FULL
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


def latency_at(o: Outcome | None, q: float) -> float:
    return math.nan if o is None else percentile(o.latencies_ms(), q)


def latency_ratio(peer: Outcome | None, hive: Outcome | None, q: float) -> str:
    """Peer ÷ hyperhive at the q-th percentile, both measured the same way."""
    if peer is None or hive is None:
        return "—"
    return fmt_ratio(latency_at(peer, q) / latency_at(hive, q))


@dataclass
class Row:
    system: System
    warm: Outcome | None = None  # closely spaced probes (none for the slow pollers)
    latency_from_idle: bool = False  # a slow poller: its latency is its poll interval
    throughput: dict[int, Outcome] = field(default_factory=dict)
    idle_latency: Outcome | None = None
    idle_cpu: float | None = None
    hive_synchronous: int | None = None  # hyperhive: what open_db sets under its environment

    def outcomes(self) -> list[Outcome]:
        """Every run of this row, once each."""
        found = [self.warm, *self.throughput.values(), self.idle_latency]
        return list({id(o): o for o in found if o is not None}.values())

    def synchronous(self) -> str:
        """`PRAGMA synchronous` as read back: on every connection a peer opened in its runs,
        or what `open_db` sets for the coordinator."""
        if self.hive_synchronous is not None:
            name = SYNC_NAMES.get(self.hive_synchronous, str(self.hive_synchronous))
            return f"{name} (`open_db` in the coordinator's environment)"
        counts = Counter(level for o in self.outcomes() for level in o.synchronous)
        if not counts:
            return "—"
        total = sum(counts.values())
        if len(counts) == 1:
            (level,) = counts
            return f"{SYNC_NAMES.get(level, str(level))} on all {total:,} connections"
        return (
            ", ".join(f"{SYNC_NAMES.get(k, str(k))} on {n:,}" for k, n in sorted(counts.items()))
            + f" of {total:,} connections"
        )

    @property
    def latency(self) -> Outcome | None:
        """The latency the main table shows: warm, or idle for a slow poller."""
        return self.idle_latency if self.latency_from_idle else self.warm

    def lat(self, q: float) -> float:
        return latency_at(self.latency, q)

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


def problems(o: Outcome) -> str:
    """What went wrong in a run that was not exactly once."""
    d = o.delivery
    parts = [f"{d.lost} lost", f"{d.duplicated} duplicated"]
    if d.misdelivered is not None:
        parts.append(f"{d.misdelivered} misdelivered")
    if d.sent != o.spec.count:
        parts.append(f"{o.spec.count - d.sent} never sent")
    if d.unexpected:
        parts.append(f"{d.unexpected} receipts of messages not sent in this run")
    if o.inboxes_drained != o.inboxes:
        parts.append(f"{o.inboxes_drained} of {o.inboxes} inboxes drained")
    if o.errors:
        parts.append(f"{len(o.errors)} errors")
    return ", ".join(parts)


def exactness(row: Row) -> str:
    """The exactly-once verdict over every run of a row."""
    runs = row.outcomes()
    if not runs:
        return ""
    if all(o.exact for o in runs):
        total = sum(o.delivery.sent for o in runs)
        whom = (
            "reached its own receiver once"
            if row.system.addressed
            else "ran once (one queue: no addressee)"
        )
        where = "its one run" if len(runs) == 1 else f"all {len(runs)} runs"
        return (
            f"exactly once: in {where} each of the {total:,} messages {whom}; "
            "every inbox drained after each run"
        )
    bad = [f"{o.spec.kind}, {o.spec.receivers} rcv: {problems(o)}" for o in runs if not o.exact]
    return "NOT exactly once: " + "; ".join(bad)


@dataclass
class Regime:
    """One durability level: every system in `rows` runs SQLite at `level`."""

    level: Synchronous
    rows: list[Row]
    latency_count: int
    count: int
    idle: bool

    @property
    def name(self) -> str:
        return self.level.name


def main_table(regime: Regime) -> list[str]:
    """Latency, throughput and the durability each system was seen to run at."""
    out: list[str] = []
    cols = [f"msg/s, {n} rcv" for n in RECEIVER_COUNTS]
    out.append(
        "| system | synchronous (read back) | p50 latency | p99 latency | "
        + " | ".join(cols)
        + " | notes |"
    )
    out.append("|---|---|---:|---:|" + "---:|" * len(cols) + "---|")
    for row in regime.rows:
        mark = "¹" if row.latency_from_idle else ""
        notes = "; ".join(x for x in (row.system.note, exactness(row)) if x)
        cells = [fmt_rate(row.rate(n)) for n in RECEIVER_COUNTS]
        out.append(
            f"| {row.system.label} | {row.synchronous()} | {fmt_ms(row.lat(50))}{mark} | "
            f"{fmt_ms(row.lat(99))}{mark} | " + " | ".join(cells) + f" | {notes} |"
        )
    return out


def ratio_table(regime: Regime) -> list[str]:
    """Ratios within one regime: warm latency against warm, idle against idle."""
    hive = regime.rows[0]
    cols = ["warm p50", "warm p99"]
    if regime.idle:
        cols += ["idle p50", f"idle max (= p99 of {IDLE_SAMPLES})"]
    cols += [f"msg/s, {n} rcv" for n in RECEIVER_COUNTS]
    out = [
        "Ratios, hyperhive vs each peer, each within one regime (above 1× = hyperhive better). "
        "*warm*: latency of probes 2–6 ms apart, the peer's ÷ hyperhive's (none for the slow "
        "pollers: their latency is their poll interval, measured only idle)"
        + (
            f"; *idle*: latency of the {IDLE_SAMPLES} probes at random times over ~30 s to an "
            "idle consumer, the peer's ÷ hyperhive's from the same run"
            if regime.idle
            else ""
        )
        + "; throughput: hyperhive's ÷ the peer's.",
        "",
        "| vs | " + " | ".join(cols) + " |",
        "|---|" + "---:|" * len(cols),
    ]
    for row in regime.rows[1:]:
        cells = [latency_ratio(row.warm, hive.warm, q) for q in (50, 99)]
        if regime.idle:
            cells += [latency_ratio(row.idle_latency, hive.idle_latency, q) for q in (50, 100)]
        for n in RECEIVER_COUNTS:
            a, b = hive.rate(n), row.rate(n)
            cells.append(fmt_ratio(a / b) if a and b else "—")
        out.append(f"| {row.system.label} | " + " | ".join(cells) + " |")
    return out


def idle_table(regime: Regime) -> list[str]:
    out = [
        f"Idle: latency of {IDLE_SAMPLES} probes sent at random times over ~30 s to an idle "
        "consumer (all systems at once, except those marked as measured alone, whose polling "
        f"would load the others); CPU of the broker with {IDLE_RECEIVERS} receivers "
        f"blocked and no traffic, over {IDLE_CPU_SECONDS:.0f} s (% of one core; hyperhive: the "
        "coordinator; the others: the consumer process(es), which are their broker).",
        "",
        f"| system | idle p50 | idle max (= p99 of {IDLE_SAMPLES}) | idle CPU |",
        "|---|---:|---:|---:|",
    ]
    for row in regime.rows:
        cpu = "—" if row.idle_cpu is None else f"{row.idle_cpu:.2f} %"
        alone = " (measured alone)" if row.system.idle_alone else ""
        out.append(
            f"| {row.system.label}{alone} | {fmt_ms(latency_at(row.idle_latency, 50))} | "
            f"{fmt_ms(latency_at(row.idle_latency, 100))} | {cpu} |"
        )
    return out


def aims(regime: Regime) -> str:
    hive = regime.rows[0]
    checks = [
        ("p50 < 2 ms", hive.lat(50) < 2),
        ("p99 < 10 ms", hive.lat(99) < 10),
        (
            f"≥ 5,000 msg/s (worst of {len(RECEIVER_COUNTS)})",
            min((hive.rate(n) or 0) for n in RECEIVER_COUNTS) >= 5000,
        ),
        ("idle CPU ≈ 0 (< 0.5 %)", hive.idle_cpu is not None and hive.idle_cpu < 0.5),
    ]
    return "Aims for hyperhive: " + ", ".join(f"{a} {'✓' if ok else '✗'}" for a, ok in checks) + "."


def method_note(regime: Regime) -> str:
    """How this regime's tables were measured, in one paragraph."""
    slow = (
        f"¹ = the slow pollers: their idle latency, {IDLE_SAMPLES} probes at random times over "
        "~30 s, where p99 is the maximum"
        if regime.idle
        else "¹ = the slow pollers: not measured at this level; their latency is their poll "
        "interval"
    )
    return (
        f"Every system runs SQLite at `PRAGMA synchronous={regime.name}` on every connection it "
        "opens (WAL everywhere); the column says what SQLite reported back. "
        f"Latency: {regime.latency_count:,} probes, one sender, one blocked receiver, 2–6 ms "
        f"apart ({slow}). Throughput: {regime.count:,} messages per run, {SENDER_THREADS} sender "
        "threads, round-robin over the receivers, unique messages ÷ (last receipt − first send)."
    )


def regime_section(regime: Regime, headline: bool) -> list[str]:
    what = "headline" if headline else "the second comparison"
    out = [
        f"### At synchronous={regime.name} ({what})",
        "",
        method_note(regime),
        "",
        *main_table(regime),
        "",
        *ratio_table(regime),
    ]
    if regime.idle:
        out += ["", *idle_table(regime), "", aims(regime)]
    return out


def detail_row(regime: Regime, row: Row, o: Outcome) -> str:
    d = o.delivery
    lat = o.latencies_ms()
    cpu = "—" if o.broker_cpu is None else f"{o.broker_cpu:.0f} %"
    mis = "n/a" if d.misdelivered is None else str(d.misdelivered)
    return (
        f"| {regime.name} | {row.system.key} | {o.spec.kind} | {o.spec.receivers} | "
        f"{d.sent:,} | {d.once:,} | {d.lost} | {d.duplicated} | {mis} | "
        f"{d.drained} ({o.inboxes_drained}/{o.inboxes}) | {o.wall:.1f} s | "
        f"{fmt_rate(o.throughput)} | {fmt_ms(percentile(lat, 50))} | "
        f"{fmt_ms(percentile(lat, 99))} | {cpu} |"
    )


def details(regimes: list[Regime]) -> list[str]:
    out = [
        "Details per run. *once*: messages that reached their own receiver (sequence `seq` is "
        "for receiver `seq % receivers`) exactly once; *misdelivered*: receipts by another "
        "receiver (n/a for huey: one queue, any worker runs any task); *drained*: messages "
        "found by the last non-blocking receive on every inbox after the senders finished "
        "(inboxes drained / inboxes). p99 of fewer than 100 samples is their maximum.",
        "",
        "| regime | system | run | receivers | sent | once | lost | dup | misdelivered "
        "| drained | wall | msg/s | p50 | p99 | broker CPU |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for regime in regimes:
        for row in regime.rows:
            out += [detail_row(regime, row, o) for o in row.outcomes()]
    errors = [e for r in regimes for row in r.rows for o in row.outcomes() for e in o.errors]
    if errors:
        out += ["", f"{len(errors)} errors; the first: ```{errors[0].strip()}```"]
    return out


def report(regimes: list[Regime], elapsed: float, meta: str) -> str:
    out = [
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {elapsed:.0f} s in all. Machine: {machine()}."
        f" {meta}",
    ]
    for i, regime in enumerate(regimes):
        out += ["", *regime_section(regime, headline=i == 0)]
    out += ["", *details(regimes)]
    return "\n".join(out) + "\n"


# main ------------------------------------------------------------------------------------------


def build_rows(work: Path, hive: Hyperhive, args: argparse.Namespace, idle: bool) -> list[Row]:
    """hyperhive first, then the peers, all at hive.level, each in its own directory."""
    rows = [Row(hive)]
    if args.only_hyperhive:
        return rows
    level = hive.level
    rows += [Row(PersistQueue(work / "pq", level))]
    if idle:  # its latency is its 10 s tick, measured only in the idle run
        rows += [Row(PersistQueueXProc(work / "pqx", level), latency_from_idle=True)]
    rows += [Row(Huey(work / "huey", level))]
    if idle:  # the headline also shows huey with its consumer's poll lowered
        rows += [Row(HueyFastPoll(work / "huey-1ms", level))]
    rows += [Row(PollLoop(work / "poll" / "poll.db", level), latency_from_idle=True)]
    return rows


def measure_warm(regime: Regime) -> None:
    spaced = Spec("latency", 1, regime.latency_count, 1, LATENCY_GAP)
    for row in regime.rows:
        if row.latency_from_idle:
            continue
        row.warm = run_one(row.system, spaced, "lat")
        log(
            f"{regime.name} {row.system.key} latency: p50 {fmt_ms(row.lat(50))} "
            f"p99 {fmt_ms(row.lat(99))}"
        )


def measure_throughput(regime: Regime) -> None:
    hive = regime.rows[0].system
    for n, tag in zip(RECEIVER_COUNTS, ("tpa", "tpb", "tpc"), strict=True):
        spec = Spec("throughput", n, regime.count, SENDER_THREADS)
        for row in regime.rows:
            if not row.system.throughput_runs:
                continue
            o = run_one(row.system, spec, tag, measure_cpu=row.system is hive)
            row.throughput[n] = o
            log(
                f"{regime.name} {row.system.key} throughput, {n} receivers: "
                f"{fmt_rate(o.throughput)} ({o.delivery.once:,} once, {o.wall:.1f} s"
                + ("" if o.exact else f"; NOT exactly once: {problems(o)}")
                + ")"
            )
            if o.errors:
                log(f"first error: {o.errors[0].strip()[-600:]}")


def idle_groups(rows: list[Row]) -> list[list[Row]]:
    """Rows measured idle together, then each one that must be measured alone."""
    together = [row for row in rows if not row.system.idle_alone]
    return [together] + [[row] for row in rows if row.system.idle_alone]


def measure_idle(regime: Regime) -> None:
    """Idle latency of every row, then the idle CPU of every broker."""
    probes = Spec("idle-latency", 1, IDLE_SAMPLES, 1, IDLE_GAP)
    for group in idle_groups(regime.rows):
        outcomes = run_concurrently([Run(row.system, probes, "slow") for row in group])
        for row, o in zip(group, outcomes, strict=True):
            row.idle_latency = o
            log(
                f"{row.system.key} idle latency: p50 {fmt_ms(latency_at(o, 50))} "
                f"max {fmt_ms(latency_at(o, 100))}"
            )
    idle = Spec("idle-cpu", IDLE_RECEIVERS, 10**9, 0, deadline=IDLE_CPU_SECONDS + 30)
    cpu_rows = [row for row in regime.rows if not isinstance(row.system, PersistQueueXProc)]
    for group in idle_groups(cpu_rows):
        cpus = idle_cpu([Run(row.system, idle, "idle") for row in group])
        for row, cpu in zip(group, cpus, strict=True):
            row.idle_cpu = cpu
            log(f"{row.system.key} idle CPU: {cpu:.2f} %")


def measure(regime: Regime, work: Path) -> None:
    """Every run of one regime, with its own coordinator."""
    hive = regime.rows[0]
    assert isinstance(hive.system, Hyperhive)
    try:
        hive.system.start()
        hive.hive_synchronous = hive.system.read_synchronous()
        log(
            f"{regime.name}: coordinator pid {hive.system.proc.pid if hive.system.proc else '?'} "
            f"serving in {work}, open_db reads back synchronous={hive.hive_synchronous}"
        )
        measure_warm(regime)
        measure_throughput(regime)
        if regime.idle:
            measure_idle(regime)
    finally:
        hive.system.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.broker", description=DESCRIPTION)
    ap.add_argument(
        "--count", type=int, default=THROUGHPUT_COUNT, help="messages per throughput run"
    )
    ap.add_argument("--latency-count", type=int, default=LATENCY_COUNT, help="latency probes")
    ap.add_argument(
        "--full-count",
        type=int,
        default=FULL_COUNT,
        help="messages per throughput run at synchronous=FULL (0: skip that comparison)",
    )
    ap.add_argument(
        "--full-latency-count",
        type=int,
        default=LATENCY_COUNT,
        help="latency probes at synchronous=FULL",
    )
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
    source = args.source.resolve()
    plans = [(Synchronous.NORMAL, args.latency_count, args.count, not args.no_idle)]
    if args.full_count > 0:
        plans.append((Synchronous.FULL, args.full_latency_count, args.full_count, False))
    regimes: list[Regime] = []
    try:
        for level, latency_count, count, idle in plans:
            where = work / level.value
            profile = PROFILE if args.profile and level is Synchronous.NORMAL else None
            hive = Hyperhive(where, level, profile, source)
            rows = build_rows(where, hive, args, idle)
            regimes.append(Regime(level, rows, latency_count, count, idle))
            measure(regimes[-1], where)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    meta = (
        f"Coordinator: {source_rev(source)}. Load average before/after: "
        f"{load_before} / {loadavg()} (anything else running shares the same cores)."
    )
    text = report(regimes, time.monotonic() - began, meta)
    print(text)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)
    if args.profile:
        import pstats

        pstats.Stats(str(PROFILE), stream=sys.stderr).sort_stats("cumulative").print_stats(40)
    return 0


if __name__ == "__main__":
    sys.exit(main())
