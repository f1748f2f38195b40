"""Notification benchmark: how fast a notice reaches the operator's channel, and that a full
outbox does not slow the broker.

`.venv/bin/python -m bench.notify` starts a real coordinator (process backend), a real
hive-notify and a local HTTP receiver that apprise's `json://` posts to, then measures:

* latency, event → receiver: an agent's `ask_operator` (hm1nd's socket) until the message
  carrying that question (with its action link, asked of the coordinator) is in the
  receiver's hands; one question at a time, each waited for. Twice: with the default burst
  window (`HIVE_NOTIFY_QUIET=0.5`: a notice waits that long for others to join it) and with
  none (`HIVE_NOTIFY_QUIET=0`: the machinery alone).
* broker throughput with and without 1,000 queued notices, in one run: two agents, one
  sending `--messages` messages to the other over their own sockets (each `send` waits for
  its reply, the receiver blocks in `recv`); messages ÷ (last receipt − first send). The
  conditions alternate, `--rounds` times each, the outbox drained before each: *none*
  (hive-notify idle), *retrying* (1,000 notices queued against a receiver that refuses
  everything, after their first try; default backoff), *draining* (1,000 notices queued as
  the run starts, sent while it runs); then, with a hive-notify that retries every 0.5 s
  (so it reads and rewrites 1,000 delivery rows twice a second), *none (stress)* and
  *retrying every 0.5 s*. Each ratio is a condition's median against its phase's *none*.

The Markdown table goes to stdout and to bench/results/notify.md (git-ignored).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from hyperhive.hive import outbox
from hyperhive.hive.client import HiveClient
from hyperhive.hive.db import open_db, write_tx
from hyperhive.hive.inbox import ring_doorbell

from bench.host import db_value, loadavg, source_rev
from bench.stats import nearest_rank
from tests.hivetest import REPO, RunningHive, free_port, hive_env
from tests.notifytest import Receiver, RunningNotify

RESULTS = REPO / "bench" / "results" / "notify.md"


def latency(hive: RunningHive, rx: Receiver, count: int) -> list[float]:
    """Seconds from `ask_operator` to the message in the receiver's hands, one at a time."""
    out = []
    with hive.manager() as m:
        for _ in range(count):
            before = len(rx.messages)
            t0 = time.time()
            qid = m.call("ask_operator", question="latency probe?", options=["a", "b"])["id"]
            got = rx.wait_for(lambda ms, n=before: len(ms) > n, 30, "the probe")[before]
            assert f"question #{qid}" in got.title and "/act/" in got.message, got
            out.append(got.at - t0)
            time.sleep(0.05)
    return out


def throughput(hive: RunningHive, messages: int) -> float:
    """Messages per second from alice to bob over their sockets (each send answered)."""
    got: list[float] = []
    start = threading.Event()

    def receive() -> None:
        with HiveClient(hive.paths.socket_of("bob")) as bob:
            start.set()
            while len(got) < messages:
                reply = bob.call("recv", wait_seconds=10)
                if reply.get("message"):
                    got.append(time.perf_counter())

    reader = threading.Thread(target=receive)
    reader.start()
    start.wait()
    with HiveClient(hive.paths.socket_of("alice")) as alice:
        t0 = time.perf_counter()
        for i in range(messages):
            alice.call("send", to="bob", body=f"m{i}")
    reader.join(120)
    assert len(got) == messages, f"{len(got)} of {messages} arrived"
    return messages / (got[-1] - t0)


def queue_notices(hive: RunningHive, n: int, tag: str) -> None:
    """`n` crash notices in one transaction, as a producer would queue them; then the bell."""
    with write_tx():
        for i in range(n):
            outbox.container_crash(f"a{i % 50}", f"exit status {i % 7}", f"{tag}-{i}")
    ring_doorbell(hive.paths.notify_doorbell)


STRESS = {"HIVE_NOTIFY_RETRY_FIRST": "0.5", "HIVE_NOTIFY_RETRY_MAX": "0.5"}
"""A hive-notify that retries its whole outbox twice a second (the defaults: 10 s, doubling)."""


def drain(hive: RunningHive, rx: Receiver) -> None:
    """Let the receiver take everything, until the outbox is empty again."""
    rx.fail_next(0)
    deadline = time.monotonic() + 120
    while queued(hive) and time.monotonic() < deadline:
        ring_doorbell(hive.paths.notify_doorbell)
        time.sleep(0.2)
    assert not queued(hive), "the outbox did not drain"
    time.sleep(0.6)


def queued(hive: RunningHive) -> int:
    return int(db_value(hive.paths.db, "SELECT count(*) FROM outbox WHERE state = 'queued'"))


def fmt(v: float) -> str:
    return f"{v * 1000:.0f} ms" if v >= 0.01 else f"{v * 1000:.1f} ms"


def run(args: argparse.Namespace) -> str:
    root = Path(tempfile.mkdtemp(prefix="hh-bench-notify-"))
    started = time.monotonic()
    rx = Receiver()
    env = hive_env(
        root,
        HIVE_NOTIFY_URLS=rx.json_url(),
        HIVE_WEB_PUBLIC_URL=f"http://127.0.0.1:{free_port()}",
    )
    hive = RunningHive(env)
    lines: list[str] = []
    try:
        with hive.admin() as a:
            for name in ("alice", "bob"):
                a.call("spawn", name=name)
        open_db(hive.paths.db, create=False)

        lat: dict[str, list[float]] = {}
        for label, quiet in (("default (0.5 s burst window)", "0.5"), ("no burst window", "0")):
            notify = RunningNotify(env, HIVE_NOTIFY_QUIET=quiet)
            try:
                lat[label] = latency(hive, rx, args.probes)
            finally:
                notify.stop()

        results: dict[str, list[float]] = {}
        backlog: dict[str, list[int]] = {}
        phases = (
            ({}, ("none", "retrying", "draining")),
            (STRESS, ("none (stress)", "retrying every 0.5 s (stress)")),
        )
        for extra, conditions in phases:
            notify = RunningNotify(env, **extra)
            try:
                throughput(hive, 200)  # warm up
                for r in range(args.rounds):
                    for cond in conditions:
                        drain(hive, rx)
                        if cond.startswith("retrying"):
                            rx.fail_next(10**9)
                            queue_notices(hive, 1000, f"q{r}{len(extra)}")
                            time.sleep(1.2)  # the first try (and, under stress, retries) done
                        elif cond == "draining":
                            queue_notices(hive, 1000, f"d{r}")
                        backlog.setdefault(cond, []).append(queued(hive))
                        results.setdefault(cond, []).append(throughput(hive, args.messages))
            finally:
                notify.stop()
                rx.fail_next(0)

        base = {
            cond: statistics.median(results["none (stress)" if "stress" in cond else "none"])
            for cond in results
        }
        lines += [
            "### Latency, event → receiver",
            "",
            f"`ask_operator` → the message in a local `json://` receiver, {args.probes} probes "
            "each, one at a time; each message carries an action link asked of the "
            "coordinator.",
            "",
            "| hive-notify | p50 | p95 | max |",
            "|---|---|---|---|",
        ]
        for label, values in lat.items():
            lines.append(
                f"| {label} | {fmt(nearest_rank(values, 50))} | {fmt(nearest_rank(values, 95))} "
                f"| {fmt(max(values))} |"
            )
        lines += [
            "",
            "### Broker throughput with 1,000 queued notices",
            "",
            f"{args.messages} messages alice → bob per run, {args.rounds} runs per condition, "
            "interleaved; median messages/s and its ratio to *none*.",
            "",
            "| outbox during the run | msg/s (median) | runs | ratio to none | queued at start |",
            "|---|---|---|---|---|",
        ]
        for cond, values in results.items():
            med = statistics.median(values)
            runs = ", ".join(f"{v:.0f}" for v in values)
            start = ", ".join(str(n) for n in backlog[cond])
            lines.append(f"| {cond} | {med:.0f} | {runs} | {med / base[cond]:.2f} | {start} |")
    finally:
        hive.stop()
        rx.stop()
    elapsed = time.monotonic() - started
    head = [
        f"`python -m bench.notify` on {platform.node() or '?'} ({os.cpu_count()} cores, "
        f"load {loadavg()}), {source_rev(REPO)}, "
        f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}, {elapsed:.0f} s.",
        "",
    ]
    return "\n".join(head + lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--probes", type=int, default=30)
    parser.add_argument("--messages", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    text = run(args)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
