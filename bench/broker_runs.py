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
from multiprocessing.process import BaseProcess
from multiprocessing.queues import Queue as MpQueue
from multiprocessing.synchronize import Event as MpEvent
from multiprocessing.synchronize import Semaphore as MpSemaphore
from pathlib import Path
from typing import Any

from bench.broker_systems import SYNC_SEEN, Huey, Record, System, make_body, parse_body

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
    expected: Sequence[int],
    deadline: float,
    ready: MpSemaphore,
    out: list[Record],
    errors: list[str],
) -> list[threading.Thread]:
    lock = threading.Lock()

    def loop(i: int) -> None:
        mine: list[Record] = []
        try:
            inbox = system.inbox(tag, i)
        except Exception:
            errors.append(traceback.format_exc())
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
                mine.extend(parse_body(b, now) for b in bodies)
        except Exception:
            errors.append(traceback.format_exc())
        finally:
            with contextlib.suppress(Exception):
                inbox.close()
            with lock:
                out.extend(mine)

    threads = [threading.Thread(target=loop, args=(i,), daemon=True) for i in indexes]
    for t in threads:
        t.start()
    return threads


def _sender_threads(
    system: System, tag: str, spec: Spec, go: MpEvent, deadline: float, errors: list[str]
) -> tuple[list[int], list[threading.Thread]]:
    sent = [0] * spec.senders

    def loop(j: int) -> None:
        try:
            snd = system.sender(tag, j, spec.receivers)
        except Exception:
            errors.append(traceback.format_exc())
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
                sent[j] += 1
        except Exception:
            errors.append(traceback.format_exc())
        finally:
            with contextlib.suppress(Exception):
                snd.close()

    threads = [threading.Thread(target=loop, args=(j,), daemon=True) for j in range(spec.senders)]
    for t in threads:
        t.start()
    return sent, threads


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
) -> Haul:
    system.open_process(tag, spec.receivers)
    out: list[Record] = []
    errors: list[str] = []
    expected = expected_counts(spec.count, spec.receivers)
    _join(_receiver_threads(system, tag, indexes, expected, deadline, ready, out, errors), deadline)
    return Haul(records=out, errors=errors)


def _child_send(system: System, tag: str, spec: Spec, go: MpEvent, deadline: float) -> Haul:
    system.open_process(tag, spec.receivers)
    errors: list[str] = []
    sent, threads = _sender_threads(system, tag, spec, go, deadline, errors)
    _join(threads, deadline)
    return Haul(sent=sum(sent), errors=errors)


def _child_inproc(
    system: System, tag: str, spec: Spec, deadline: float, ready: MpSemaphore, go: MpEvent
) -> Haul:
    system.open_process(tag, spec.receivers)
    out: list[Record] = []
    errors: list[str] = []
    expected = expected_counts(spec.count, spec.receivers)
    receivers = _receiver_threads(
        system, tag, range(spec.receivers), expected, deadline, ready, out, errors
    )
    sent, senders = _sender_threads(system, tag, spec, go, deadline, errors)
    _join(senders + receivers, deadline)
    return Haul(records=out, sent=sum(sent), errors=errors)


def _child_huey(system: Huey, tag: str, spec: Spec, deadline: float, ready: MpSemaphore) -> Haul:
    """Run huey's own consumer until every message ran; a watcher stops it (SIGINT, graceful)."""
    got: list[Record] = []
    finished = threading.Event()

    def done() -> None:
        if len(got) >= spec.count:
            finished.set()

    huey, _task = system.app(tag, got, done)

    @huey.on_startup()  # type: ignore[untyped-decorator]
    def _started() -> None:  # once per worker thread
        ready.release()

    consumer = huey.create_consumer(workers=spec.receivers, worker_type="thread")

    def watch() -> None:
        finished.wait(timeout=max(deadline - time.monotonic(), 0.0))
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=watch, daemon=True).start()
    consumer.run()
    return Haul(records=list(got))


@dataclass
class Haul:
    """What one child process of a run reports back."""

    records: list[Record] = field(default_factory=list)
    sent: int = 0
    errors: list[str] = field(default_factory=list)
    synchronous: list[int] = field(default_factory=list)  # read back per connection opened


def _child(results: MpQueue[Haul], fn: Callable[..., Haul], *args: Any) -> None:
    SYNC_SEEN.clear()  # what the parent opened before the fork is not this process's
    try:
        haul = fn(*args)
    except BaseException:
        haul = Haul(errors=[traceback.format_exc()])
    haul.synchronous = list(SYNC_SEEN)
    results.put(haul)


@dataclass
class Outcome:
    system: str
    spec: Spec
    records: list[Record]
    sent: int
    errors: list[str]
    wall: float
    synchronous: list[int]  # PRAGMA synchronous read back on each connection a peer opened
    broker_cpu: float | None = None  # % of one core, over the run

    @property
    def unique(self) -> int:
        return len({r[0] for r in self.records})

    @property
    def duplicates(self) -> int:
        return len(self.records) - self.unique

    @property
    def missing(self) -> int:
        return self.spec.count - self.unique

    @property
    def throughput(self) -> float:
        if not self.records:
            return 0.0
        first = min(r[1] for r in self.records)
        last = max(r[2] for r in self.records)
        return self.unique / max((last - first) / 1e9, 1e-9)

    def latencies_ms(self) -> list[float]:
        return sorted((r[2] - r[1]) / 1e6 for r in self.records)

    @property
    def exact(self) -> bool:
        return self.missing == 0 and self.duplicates == 0 and not self.errors


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
        self.deadline = self.started + sp.deadline
        if s.topology == "split":
            for g in range(min(RECEIVER_PROCESSES, sp.receivers)):
                group = list(range(g, sp.receivers, RECEIVER_PROCESSES))
                self._spawn(
                    _child_receive, s, tag, sp, group, self.deadline, self.ready, receiver=True
                )
            if sp.senders:
                self._spawn(_child_send, s, tag, sp, self.go, self.deadline)
        elif s.topology == "inproc":
            self._spawn(
                _child_inproc, s, tag, sp, self.deadline, self.ready, self.go, receiver=True
            )
        elif s.topology == "huey":
            self._spawn(_child_huey, s, tag, sp, self.deadline, self.ready, receiver=True)
            if sp.senders:
                self._spawn(_child_send, s, tag, sp, self.go, self.deadline)
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
        return Outcome(self.system.key, self.spec, [], 0, errors, wall, [])

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
            total.sent += haul.sent
            total.errors.extend(haul.errors)
            total.synchronous.extend(haul.synchronous)
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
