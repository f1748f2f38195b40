"""The broker benchmark's harness: one system × one run spec, in real processes and threads.

Receivers are threads blocked in their receive call, senders threads of another process
(or of the same one, for persist-queue); every message carries its sequence number and
send time, and every receipt is collected and counted.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing as mp
import os
import queue
import random
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from multiprocessing.process import BaseProcess
from multiprocessing.queues import Queue as MpQueue
from multiprocessing.synchronize import Event as MpEvent
from multiprocessing.synchronize import Semaphore as MpSemaphore
from pathlib import Path
from typing import Any

from bench.broker_systems import (
    DRAIN_MAX,
    SYNC_SEEN,
    Huey,
    Record,
    System,
    make_body,
    parse_body,
)

RECEIVER_PROCESSES = 2  # receivers are threads, spread over this many processes
IDLE_CPU_SECONDS = 10.0
RECV_WAIT = 30.0  # the longest a receiver blocks in one receive call
RUN_DEADLINE = 90.0  # every run stops by itself after this long
READY_TIMEOUT = 60.0


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Spec:
    kind: str  # "latency" | "throughput" | "idle-latency" | "idle-cpu"
    receivers: int
    count: int
    senders: int
    gap: tuple[float, float] | None = None
    deadline: float = RUN_DEADLINE


def expected_counts(count: int, receivers: int) -> list[int]:
    """Message `seq` goes to receiver `seq % receivers`."""
    return [len(range(i, count, receivers)) for i in range(receivers)]


def _receiver_threads(
    system: System,
    tag: str,
    indexes: Iterable[int],
    spec: Spec,
    deadline: float,
    ready: MpSemaphore,
    senders_done: MpEvent,
    haul: Haul,
) -> list[threading.Thread]:
    """One thread per receiver: receive its share, then, once every sender is done, drain
    its inbox with a last non-blocking receive (what a duplicate or a misdelivery left)."""
    expected = expected_counts(spec.count, spec.receivers)
    lock = threading.Lock()

    def loop(i: int) -> None:
        mine: list[Record] = []
        drained = 0
        try:
            inbox = system.inbox(tag, i)
        except Exception:
            haul.errors.append(traceback.format_exc())
            ready.release()
            return
        ready.release()
        try:
            while len(mine) < expected[i]:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                bodies = inbox.recv(min(left, RECV_WAIT))
                now = time.perf_counter_ns()
                mine.extend(parse_body(b, now, i) for b in bodies)
            senders_done.wait(timeout=max(deadline - time.monotonic(), 0.0))
            bodies = inbox.drain()
            now = time.perf_counter_ns()
            mine.extend(parse_body(b, now, i, drained=True) for b in bodies)
            drained = 1
        except Exception:
            haul.errors.append(traceback.format_exc())
        finally:
            with contextlib.suppress(Exception):
                inbox.close()
            with lock:
                haul.records.extend(mine)
                haul.inboxes_drained += drained

    threads = [threading.Thread(target=loop, args=(i,), daemon=True) for i in indexes]
    for t in threads:
        t.start()
    return threads


def _sender_threads(
    system: System, tag: str, spec: Spec, go: MpEvent, deadline: float, haul: Haul
) -> list[threading.Thread]:
    """Senders split the sequence numbers; each one sent is noted in `haul.sent`."""

    def loop(j: int) -> None:
        try:
            snd = system.sender(tag, j, spec.receivers)
        except Exception:
            haul.errors.append(traceback.format_exc())
            return
        rng = random.Random(j)
        try:
            if not go.wait(timeout=max(deadline - time.monotonic(), 0.0)):
                return
            for seq in range(j, spec.count, spec.senders):
                if time.monotonic() > deadline:
                    break
                if spec.gap is not None:
                    time.sleep(rng.uniform(*spec.gap))
                snd.send(seq % spec.receivers, make_body(seq))
                haul.sent.append(seq)
        except Exception:
            haul.errors.append(traceback.format_exc())
        finally:
            with contextlib.suppress(Exception):
                snd.close()

    threads = [threading.Thread(target=loop, args=(j,), daemon=True) for j in range(spec.senders)]
    for t in threads:
        t.start()
    return threads


def _join(threads: list[threading.Thread], deadline: float) -> None:
    for t in threads:
        t.join(timeout=max(deadline - time.monotonic(), 0.0) + 5)


def _child_receive(
    system: System,
    tag: str,
    spec: Spec,
    indexes: list[int],
    deadline: float,
    ready: MpSemaphore,
    senders_done: MpEvent,
) -> Haul:
    system.open_process(tag, spec.receivers)
    haul = Haul()
    threads = _receiver_threads(system, tag, indexes, spec, deadline, ready, senders_done, haul)
    _join(threads, deadline)
    return haul


def _child_send(
    system: System, tag: str, spec: Spec, go: MpEvent, deadline: float, senders_done: MpEvent
) -> Haul:
    system.open_process(tag, spec.receivers)
    haul = Haul()
    _join(_sender_threads(system, tag, spec, go, deadline, haul), deadline)
    senders_done.set()
    return haul


def _child_inproc(
    system: System,
    tag: str,
    spec: Spec,
    deadline: float,
    ready: MpSemaphore,
    go: MpEvent,
    senders_done: MpEvent,
) -> Haul:
    system.open_process(tag, spec.receivers)
    haul = Haul()
    receivers = _receiver_threads(
        system, tag, range(spec.receivers), spec, deadline, ready, senders_done, haul
    )
    _join(_sender_threads(system, tag, spec, go, deadline, haul), deadline)
    senders_done.set()
    _join(receivers, deadline)
    return haul


def _child_huey(
    system: Huey, tag: str, spec: Spec, deadline: float, ready: MpSemaphore, senders_done: MpEvent
) -> Haul:
    """Run huey's own consumer until every message ran and every sender is done; a watcher
    stops it (SIGINT, graceful). Then the queue is drained: what is left was never run."""
    got: list[Record] = []
    finished = threading.Event()

    def done() -> None:
        if len(got) >= spec.count:
            finished.set()

    huey, _task = system.app(tag, got, done)

    @huey.on_startup()  # type: ignore[untyped-decorator]
    def _started() -> None:  # once per worker thread
        ready.release()

    consumer = huey.create_consumer(
        workers=spec.receivers, worker_type="thread", **system.consumer_options()
    )

    def watch() -> None:
        finished.wait(timeout=max(deadline - time.monotonic(), 0.0))
        senders_done.wait(timeout=max(deadline - time.monotonic(), 0.0))
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=watch, daemon=True).start()
    consumer.run()
    haul = Haul(records=list(got), inboxes_drained=1)
    for _ in range(DRAIN_MAX):
        task = huey.dequeue()
        if task is None:
            break
        haul.records.append(parse_body(str(task.args[0]), time.perf_counter_ns(), -1, True))
    return haul


@dataclass
class Haul:
    """What one child process of a run reports back."""

    records: list[Record] = field(default_factory=list)
    sent: list[int] = field(default_factory=list)  # the sequence numbers sent
    errors: list[str] = field(default_factory=list)
    synchronous: list[int] = field(default_factory=list)  # read back per connection opened
    inboxes_drained: int = 0


def _child(results: MpQueue[Haul], fn: Callable[..., Haul], *args: Any) -> None:
    SYNC_SEEN.clear()  # what the parent opened before the fork is not this process's
    try:
        haul = fn(*args)
    except BaseException:
        haul = Haul(errors=[traceback.format_exc()])
    haul.synchronous = list(SYNC_SEEN)
    results.put(haul)


@dataclass(frozen=True)
class Delivery:
    """The exactly-once check of one run: every message sent reached its own receiver, once."""

    sent: int
    once: int  # received exactly once, by its own receiver (by anyone, with no addressee)
    lost: int  # sent and never received, not even by the drain
    duplicated: int  # receipts beyond the first of a message
    misdelivered: int | None  # receipts by a receiver other than its own; None: no addressee
    unexpected: int  # receipts of a sequence number no sender sent in this run
    drained: int  # receipts found by the last non-blocking receive after the run


def check_delivery(
    records: Sequence[Record], sent: Sequence[int], receivers: int, addressed: bool
) -> Delivery:
    """Who got what: message `seq` is for receiver `seq % receivers`."""
    got: dict[int, list[int]] = {}
    for r in records:
        got.setdefault(r.seq, []).append(r.receiver)
    was_sent = set(sent)
    own = [
        seq
        for seq, who in got.items()
        if seq in was_sent and len(who) == 1 and (not addressed or who[0] == seq % receivers)
    ]
    return Delivery(
        sent=len(was_sent),
        once=len(own),
        lost=len(was_sent - got.keys()),
        duplicated=sum(len(who) - 1 for who in got.values()),
        misdelivered=(
            sum(1 for seq, who in got.items() for r in who if r != seq % receivers)
            if addressed
            else None
        ),
        unexpected=sum(len(who) for seq, who in got.items() if seq not in was_sent),
        drained=sum(1 for r in records if r.drained),
    )


@dataclass
class Outcome:
    system: str
    spec: Spec
    records: list[Record]
    sent: list[int]  # sequence numbers sent
    errors: list[str]
    wall: float
    synchronous: list[int]  # PRAGMA synchronous read back on each connection a peer opened
    inboxes_drained: int = 0
    addressed: bool = True
    broker_cpu: float | None = None  # % of one core, over the run

    @cached_property
    def delivery(self) -> Delivery:
        return check_delivery(self.records, self.sent, self.spec.receivers, self.addressed)

    @property
    def inboxes(self) -> int:
        """Inboxes there were to drain: one per receiver, or huey's one queue."""
        return self.spec.receivers if self.addressed else 1

    @property
    def in_time(self) -> list[Record]:
        """Receipts of the run itself, without what the drain found afterwards."""
        return [r for r in self.records if not r.drained]

    @property
    def unique(self) -> int:
        return len({r.seq for r in self.in_time})

    @property
    def throughput(self) -> float:
        records = self.in_time
        if not records:
            return 0.0
        first = min(r.sent_ns for r in records)
        last = max(r.received_ns for r in records)
        return self.unique / max((last - first) / 1e9, 1e-9)

    def latencies_ms(self) -> list[float]:
        return sorted((r.received_ns - r.sent_ns) / 1e6 for r in self.in_time)

    @property
    def exact(self) -> bool:
        d = self.delivery
        return (
            d.sent == self.spec.count
            and d.once == d.sent
            and d.lost == d.duplicated == d.unexpected == 0
            and not d.misdelivered
            and self.inboxes_drained == self.inboxes
            and not self.errors
        )


class Run:
    """One system × one spec: its processes, started, fired, collected."""

    def __init__(self, system: System, spec: Spec, tag: str) -> None:
        self.system = system
        self.spec = spec
        self.tag = tag
        self.ctx = mp.get_context("fork")
        self.results: MpQueue[Haul] = self.ctx.Queue()
        self.ready = self.ctx.Semaphore(0)
        self.go = self.ctx.Event()
        self.senders_done = self.ctx.Event()
        self.procs: list[BaseProcess] = []
        self.receiver_procs: list[BaseProcess] = []
        self.deadline = 0.0
        self.started = 0.0

    def _spawn(self, fn: Callable[..., Any], *args: Any, receiver: bool = False) -> None:
        p = self.ctx.Process(target=_child, args=(self.results, fn, *args), daemon=True)
        p.start()
        self.procs.append(p)
        if receiver:
            self.receiver_procs.append(p)

    def start(self) -> Run:
        s, sp, tag = self.system, self.spec, self.tag
        s.prepare(tag, sp.receivers, sp.senders)
        self.started = time.monotonic()
        self.deadline = end = self.started + sp.deadline
        done = self.senders_done
        if not sp.senders:
            done.set()  # nothing will be sent: receivers may drain whenever they stop
        if s.topology == "split":
            for g in range(min(RECEIVER_PROCESSES, sp.receivers)):
                group = list(range(g, sp.receivers, RECEIVER_PROCESSES))
                self._spawn(_child_receive, s, tag, sp, group, end, self.ready, done, receiver=True)
            if sp.senders:
                self._spawn(_child_send, s, tag, sp, self.go, end, done)
        elif s.topology == "inproc":
            self._spawn(_child_inproc, s, tag, sp, end, self.ready, self.go, done, receiver=True)
        elif s.topology == "huey":
            self._spawn(_child_huey, s, tag, sp, end, self.ready, done, receiver=True)
            if sp.senders:
                self._spawn(_child_send, s, tag, sp, self.go, end, done)
        else:
            raise ValueError(f"unknown topology {s.topology!r}")
        return self

    def wait_ready(self) -> None:
        """Until every receiver is connected; raises if a process dies first or it takes long."""
        end = time.monotonic() + READY_TIMEOUT
        waiting = self.spec.receivers
        while waiting:
            if self.ready.acquire(timeout=0.2):
                waiting -= 1
                continue
            dead = [p for p in self.procs if p.exitcode is not None]
            if dead:
                raise RuntimeError(
                    f"{self.system.key}: a process exited (code {dead[0].exitcode}) before "
                    f"{waiting} receivers were ready"
                )
            if time.monotonic() > end:
                raise RuntimeError(f"{self.system.key}: receivers not ready in {READY_TIMEOUT} s")

    def abort(self, why: str) -> Outcome:
        """Stop a run that failed; an outcome carrying the error (and any child's error)."""
        for p in self.procs:
            if p.is_alive():
                p.terminate()
        errors = [why]
        with contextlib.suppress(queue.Empty, OSError, EOFError, ValueError):
            while True:
                errors.extend(self.results.get(timeout=0.5).errors)
        self.stop()
        wall = time.monotonic() - self.started
        return Outcome(self.system.key, self.spec, [], [], errors, wall, [])

    def fire(self) -> None:
        self.go.set()

    def collect(self) -> Outcome:
        total = Haul()
        for _ in range(len(self.procs)):
            try:
                haul = self.results.get(timeout=max(self.deadline - time.monotonic(), 0.0) + 20)
            except queue.Empty:
                total.errors.append("timed out waiting for a process's results")
                break
            total.records.extend(haul.records)
            total.sent.extend(haul.sent)
            total.errors.extend(haul.errors)
            total.synchronous.extend(haul.synchronous)
            total.inboxes_drained += haul.inboxes_drained
        wall = time.monotonic() - self.started
        self.stop()
        return Outcome(
            self.system.key,
            self.spec,
            total.records,
            total.sent,
            total.errors,
            wall,
            total.synchronous,
            total.inboxes_drained,
            self.system.addressed,
        )

    def stop(self) -> None:
        for p in self.procs:
            p.join(timeout=5)
        for p in self.procs:
            if p.is_alive():
                p.terminate()
                p.join(timeout=5)
            if p.is_alive():
                p.kill()
                p.join(timeout=5)


def cpu_seconds(pids: Iterable[int]) -> float:
    """utime + stime of the processes (all their threads), in seconds."""
    ticks = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{pid}/stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def run_one(system: System, spec: Spec, tag: str, *, measure_cpu: bool = False) -> Outcome:
    run = Run(system, spec, tag)
    try:
        run.start()
        run.wait_ready()
        time.sleep(0.3)  # let every receiver block in its receive call
        pids = system.broker_pids(run) if measure_cpu else []
        cpu0, t0 = cpu_seconds(pids), time.monotonic()
        run.fire()
        outcome = run.collect()
        if pids:
            outcome.broker_cpu = 100 * (cpu_seconds(pids) - cpu0) / (time.monotonic() - t0)
        return outcome
    except Exception:
        return run.abort(traceback.format_exc())
    finally:
        run.stop()


def run_concurrently(runs: list[Run]) -> list[Outcome]:
    try:
        for run in runs:
            run.start()
        for run in runs:
            run.wait_ready()
        time.sleep(0.3)
        for run in runs:
            run.fire()
        return [run.collect() for run in runs]
    except Exception:
        why = traceback.format_exc()
        return [run.abort(why) for run in runs]
    finally:
        for run in runs:
            run.stop()


def idle_cpu(runs: list[Run]) -> list[float]:
    """% of one core each run's broker used over IDLE_CPU_SECONDS with receivers blocked."""
    try:
        for run in runs:
            run.start()
        for run in runs:
            run.wait_ready()
        time.sleep(1.0)
        before = [cpu_seconds(run.system.broker_pids(run)) for run in runs]
        t0 = time.monotonic()
        time.sleep(IDLE_CPU_SECONDS)
        elapsed = time.monotonic() - t0
        after = [cpu_seconds(run.system.broker_pids(run)) for run in runs]
        return [100 * (a - b) / elapsed for a, b in zip(after, before, strict=True)]
    except Exception:
        log(f"idle CPU run failed: {traceback.format_exc()}")
        return [math.nan] * len(runs)
    finally:
        for run in runs:
            for p in run.procs:
                if p.is_alive():
                    p.terminate()
            run.stop()
