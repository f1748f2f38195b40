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

The Markdown tables go to stdout and to bench/results/broker.md (git-ignored).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import multiprocessing as mp
import os
import platform
import queue
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from multiprocessing.process import BaseProcess
from multiprocessing.queues import Queue as MpQueue
from multiprocessing.synchronize import Event as MpEvent
from multiprocessing.synchronize import Semaphore as MpSemaphore
from pathlib import Path
from typing import Any, Protocol

from huey import SqliteHuey
from persistqueue import SQLiteAckQueue
from persistqueue.exceptions import Empty

from bench.stats import nearest_rank
from services.hive.client import HiveClient

DESCRIPTION = "Broker benchmark: hyperhive vs persist-queue, huey and a 5 s poll loop."
ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "broker.md"
PROFILE = ROOT / "bench" / "results" / "coordinator.prof"

LATENCY_COUNT = 1000
LATENCY_GAP = (0.002, 0.006)  # seconds between two latency probes (uniform)
THROUGHPUT_COUNT = 20_000
RECEIVER_COUNTS = (1, 10, 50)
SENDER_THREADS = 4
RECEIVER_PROCESSES = 2  # receivers are threads, spread over this many processes
IDLE_SAMPLES = 40
IDLE_GAP = (0.2, 1.3)  # seconds between two probes sent to an idle consumer
IDLE_RECEIVERS = 50
IDLE_CPU_SECONDS = 10.0
POLL_SECONDS = 5.0  # the naive poll loop's interval
RECV_WAIT = 30.0  # the longest a receiver blocks in one receive call
RUN_DEADLINE = 90.0  # every run stops by itself after this long
READY_TIMEOUT = 60.0
PAD = "x" * 200  # bodies are ~230 bytes: "<seq> <sent_ns> xxx…"

Record = tuple[int, int, int]  # (sequence number, sent at ns, received at ns)


def make_body(seq: int) -> str:
    return f"{seq} {time.perf_counter_ns()} {PAD}"


def parse_body(body: str, received_ns: int) -> Record:
    seq, sent, _ = body.split(" ", 2)
    return int(seq), int(sent), received_ns


# the systems under test ----------------------------------------------------------------------


class Sender(Protocol):
    def send(self, receiver: int, body: str) -> None: ...

    def close(self) -> None: ...


class Inbox(Protocol):
    def recv(self, timeout: float) -> list[str]:
        """Block up to `timeout` seconds; the bodies that arrived (maybe none)."""
        ...

    def close(self) -> None: ...


class System:
    """One system under test. `topology` says where its receivers live:

    split  – receivers are threads in RECEIVER_PROCESSES processes, senders in another one;
    inproc – receivers and senders are threads of one process (shared queue objects);
    huey   – huey's own consumer process runs the receivers (its worker threads).
    """

    key = ""
    label = ""
    topology = "split"
    note = ""
    throughput_runs = True

    def prepare(self, tag: str, receivers: int, senders: int) -> None:
        """Parent side, before the run's processes start."""

    def open_process(self, tag: str, receivers: int) -> None:
        """In each child process of a run, before its threads start."""

    def sender(self, tag: str, index: int, receivers: int) -> Sender:
        raise NotImplementedError

    def inbox(self, tag: str, index: int) -> Inbox:
        raise NotImplementedError

    def broker_pids(self, run: Run) -> list[int]:
        """The processes whose CPU counts as the broker's when idle."""
        return [p.pid for p in run.receiver_procs if p.pid is not None]


# hyperhive -------------------------------------------------------------------------------------


class _HiveSender:
    def __init__(self, socket_path: Path, names: list[str]) -> None:
        self.client = HiveClient(socket_path)
        self.names = names

    def send(self, receiver: int, body: str) -> None:
        self.client.call("send", to=self.names[receiver], body=body)

    def close(self) -> None:
        self.client.close()


class _HiveInbox:
    def __init__(self, socket_path: Path) -> None:
        self.client = HiveClient(socket_path)

    def recv(self, timeout: float) -> list[str]:
        reply = self.client.call("recv", wait_seconds=round(min(max(timeout, 0.0), 180.0), 3))
        msg = reply.get("message")
        return [] if msg is None else [str(msg["body"])]

    def close(self) -> None:
        self.client.close()


class Hyperhive(System):
    key = "hyperhive"
    label = "hyperhive coordinator"
    note = "real coordinator process; send/recv on agent unix sockets; SQLite WAL"

    def __init__(self, work: Path, profile: Path | None = None, source: Path = ROOT) -> None:
        self.source = source
        self.state = work / "state"
        self.runtime = work / "run"
        self.profile = profile
        self.proc: subprocess.Popen[bytes] | None = None
        self.spawned: set[str] = set()

    @property
    def admin_socket(self) -> Path:
        return self.runtime / "host.sock"

    def agent_socket(self, name: str) -> Path:
        return self.runtime / "agents" / name / "hive.sock"

    def start(self) -> None:
        env = dict(os.environ)
        env.update(
            HIVE_STATE_DIR=str(self.state),
            HIVE_RUNTIME_DIR=str(self.runtime),
            HIVE_BACKEND="process",
            HIVE_LOG="stderr",
            # The benchmark's receivers play the agents' harnesses: the real harness the
            # process backend would start must not compete for their inboxes.
            HIVE_AGENT_COMMAND="sleep infinity",
        )
        env.pop("HIVE_DB", None)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(self.source), env.get("PYTHONPATH", "")) if p
        )
        cmd = [sys.executable]
        if self.profile is not None:
            cmd += ["-m", "cProfile", "-o", str(self.profile)]
        cmd += ["-m", "services.coordinator"]
        self.state.mkdir(parents=True, exist_ok=True)
        out = self.state.parent / "coordinator.out"
        err = self.state.parent / "coordinator.err"
        with out.open("wb") as o, err.open("wb") as e:
            self.proc = subprocess.Popen(cmd, env=env, stdout=o, stderr=e, cwd=self.source)
        deadline = time.monotonic() + 30
        while b"hive-c0re is serving" not in out.read_bytes():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"the coordinator did not start: {err.read_text(errors='replace')[-2000:]}"
                )
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        self.proc = None

    @staticmethod
    def receiver_name(tag: str, i: int) -> str:
        return f"{tag}-r{i}"

    @staticmethod
    def sender_name(tag: str, j: int) -> str:
        return f"{tag}-s{j}"

    def prepare(self, tag: str, receivers: int, senders: int) -> None:
        names = [self.receiver_name(tag, i) for i in range(receivers)]
        names += [self.sender_name(tag, j) for j in range(senders)]
        with HiveClient(self.admin_socket) as admin:
            for name in names:
                if name not in self.spawned:
                    admin.call("spawn", name=name)
                    self.spawned.add(name)

    def sender(self, tag: str, index: int, receivers: int) -> Sender:
        names = [self.receiver_name(tag, i) for i in range(receivers)]
        return _HiveSender(self.agent_socket(self.sender_name(tag, index)), names)

    def inbox(self, tag: str, index: int) -> Inbox:
        return _HiveInbox(self.agent_socket(self.receiver_name(tag, index)))

    def broker_pids(self, run: Run) -> list[int]:
        return [] if self.proc is None else [self.proc.pid]


# persist-queue ---------------------------------------------------------------------------------


class _PQSender:
    def __init__(self, queues: dict[int, SQLiteAckQueue]) -> None:
        self.queues = queues

    def send(self, receiver: int, body: str) -> None:
        self.queues[receiver].put(body)

    def close(self) -> None:
        pass


class _PQInbox:
    def __init__(self, q: SQLiteAckQueue) -> None:
        self.q = q

    def recv(self, timeout: float) -> list[str]:
        try:
            item = self.q.get(block=True, timeout=max(timeout, 0.0), raw=True)
        except Empty:
            return []
        self.q.ack(id=item["pqid"])
        return [str(item["data"])]

    def close(self) -> None:
        pass


class PersistQueue(System):
    """One SQLiteAckQueue per receiver (a table each, one file), multithreading=True.

    Its blocking get() waits on a threading.Event that put() sets, so it is woken at once
    only by a put in the same process; otherwise it looks again every 10 s (TICK_FOR_WAIT).
    """

    key = "persist-queue"
    label = "persist-queue SQLiteAckQueue"
    topology = "inproc"
    note = "threads of ONE process (its supported mode): put() sets the getter's Event"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.queues: dict[int, SQLiteAckQueue] = {}

    def prepare(self, tag: str, receivers: int, senders: int) -> None:
        # Created here, once: persist-queue's own `if not exists: makedirs` races (and
        # raises FileExistsError) when two processes open a new queue at the same moment.
        # Likewise its switch of a new file to WAL fails with "database is locked" when
        # another process opens it at once, so the file and its tables are made here first.
        (self.root / tag).mkdir(parents=True, exist_ok=True)
        self.open_process(tag, receivers)
        for q in self.queues.values():
            q.close()
        self.queues = {}

    def open_process(self, tag: str, receivers: int) -> None:
        self.queues = {
            i: SQLiteAckQueue(
                str(self.root / tag), name=f"r{i}", multithreading=True, auto_commit=True
            )
            for i in range(receivers)
        }

    def sender(self, tag: str, index: int, receivers: int) -> Sender:
        return _PQSender(self.queues)

    def inbox(self, tag: str, index: int) -> Inbox:
        return _PQInbox(self.queues[index])


class PersistQueueXProc(PersistQueue):
    key = "persist-queue-xproc"
    label = "persist-queue SQLiteAckQueue, consumer in another process"
    topology = "split"
    throughput_runs = False  # bounded by the 10 s tick; left out to keep the run short
    note = (
        "producer and consumer in different processes (like agents): get() sees a put "
        "only at its 10 s tick; throughput not run (the first get() looks ≥ 10 s late)"
    )


# huey ------------------------------------------------------------------------------------------


class _HueySender:
    def __init__(self, task: Callable[[str], Any], huey: Any) -> None:
        self.task = task
        self.huey = huey

    def send(self, receiver: int, body: str) -> None:
        self.task(body)

    def close(self) -> None:
        self.huey.storage.close()


class Huey(System):
    """huey's SqliteHuey: one queue; the receivers are the real consumer's worker threads."""

    key = "huey"
    label = "huey SqliteHuey + huey consumer"
    topology = "huey"
    note = (
        "one queue; N receivers = N worker threads of one consumer process; "
        "default polling (0.1 s, ×1.15 per empty poll, ≤ 10 s)"
    )

    def __init__(self, root: Path) -> None:
        self.root = root

    def app(self, tag: str, sink: list[Record] | None, done: Callable[[], None] | None) -> Any:
        """(huey, task) for the run `tag`; the task appends a record to `sink`."""
        huey = SqliteHuey(name=tag, filename=str(self.root / "huey.db"), results=False)

        def deliver(body: str) -> None:
            now = time.perf_counter_ns()
            if sink is not None:
                sink.append(parse_body(body, now))
            if done is not None:
                done()

        return huey, huey.task(name="deliver")(deliver)

    def prepare(self, tag: str, receivers: int, senders: int) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    def sender(self, tag: str, index: int, receivers: int) -> Sender:
        huey, task = self.app(tag, None, None)
        return _HueySender(task, huey)


# naive 5 s poll loop ---------------------------------------------------------------------------


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), timeout=5, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=wal")
    conn.execute("PRAGMA synchronous=normal")
    return conn


class _PollSender:
    def __init__(self, db: Path, tag: str) -> None:
        self.conn = _connect(db)
        self.tag = tag

    def send(self, receiver: int, body: str) -> None:
        self.conn.execute(
            "INSERT INTO messages (recipient, body, created_at) VALUES (?, ?, ?)",
            (f"{self.tag}-{receiver}", body, time.time()),
        )

    def close(self) -> None:
        self.conn.close()


class _PollInbox:
    """SELECT my undelivered rows, mark them delivered, sleep 5 s, again."""

    def __init__(self, db: Path, recipient: str) -> None:
        self.conn = _connect(db)
        self.recipient = recipient
        self.next_poll = 0.0

    def recv(self, timeout: float) -> list[str]:
        wait = self.next_poll - time.monotonic()
        if wait > 0:
            time.sleep(min(wait, max(timeout, 0.0)))
            if time.monotonic() < self.next_poll:
                return []
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            rows = self.conn.execute(
                "SELECT id, body FROM messages WHERE recipient = ? AND delivered_at IS NULL "
                "ORDER BY id",
                (self.recipient,),
            ).fetchall()
            if rows:
                self.conn.execute(
                    "UPDATE messages SET delivered_at = ? "
                    "WHERE recipient = ? AND delivered_at IS NULL AND id <= ?",
                    (time.time(), self.recipient, rows[-1][0]),
                )
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.next_poll = time.monotonic() + POLL_SECONDS
        return [str(body) for _, body in rows]

    def close(self) -> None:
        self.conn.close()


class PollLoop(System):
    key = "poll-5s"
    label = "naive 5 s poll loop over a SQLite table"
    note = "consumer SELECTs its new rows every 5 s (the original broker's design)"

    def __init__(self, db: Path) -> None:
        self.db = db

    def prepare(self, tag: str, receivers: int, senders: int) -> None:
        self.db.parent.mkdir(parents=True, exist_ok=True)
        conn = _connect(self.db)
        conn.execute(
            "CREATE TABLE IF NOT EXISTS messages (id INTEGER PRIMARY KEY, recipient TEXT NOT "
            "NULL, body TEXT NOT NULL, created_at REAL NOT NULL, delivered_at REAL)"
        )
        conn.execute(
            "CREATE INDEX IF NOT EXISTS messages_inbox ON messages (recipient, delivered_at, id)"
        )
        conn.close()

    def sender(self, tag: str, index: int, receivers: int) -> Sender:
        return _PollSender(self.db, tag)

    def inbox(self, tag: str, index: int) -> Inbox:
        return _PollInbox(self.db, f"{tag}-{index}")


# the harness -----------------------------------------------------------------------------------


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
) -> tuple[str, Any]:
    system.open_process(tag, spec.receivers)
    out: list[Record] = []
    errors: list[str] = []
    expected = expected_counts(spec.count, spec.receivers)
    _join(_receiver_threads(system, tag, indexes, expected, deadline, ready, out, errors), deadline)
    return "recv", (out, errors)


def _child_send(
    system: System, tag: str, spec: Spec, go: MpEvent, deadline: float
) -> tuple[str, Any]:
    system.open_process(tag, spec.receivers)
    errors: list[str] = []
    sent, threads = _sender_threads(system, tag, spec, go, deadline, errors)
    _join(threads, deadline)
    return "sent", (sum(sent), errors)


def _child_inproc(
    system: System, tag: str, spec: Spec, deadline: float, ready: MpSemaphore, go: MpEvent
) -> tuple[str, Any]:
    system.open_process(tag, spec.receivers)
    out: list[Record] = []
    errors: list[str] = []
    expected = expected_counts(spec.count, spec.receivers)
    receivers = _receiver_threads(
        system, tag, range(spec.receivers), expected, deadline, ready, out, errors
    )
    sent, senders = _sender_threads(system, tag, spec, go, deadline, errors)
    _join(senders + receivers, deadline)
    return "both", (out, sum(sent), errors)


def _child_huey(
    system: Huey,
    tag: str,
    spec: Spec,
    deadline: float,
    ready: MpSemaphore,
    results: MpQueue[tuple[str, Any]],
) -> None:
    """Run huey's own consumer; a watcher posts the records and stops it (SIGINT, graceful)."""
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
        results.put(("recv", (list(got), [])))
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=watch, daemon=True).start()
    consumer.run()


def _child(results: MpQueue[tuple[str, Any]], fn: Callable[..., Any], *args: Any) -> None:
    try:
        outcome = fn(*args)
        if outcome is not None:
            results.put(outcome)
    except BaseException:
        results.put(("error", ([], [traceback.format_exc()])))


@dataclass
class Outcome:
    system: str
    spec: Spec
    records: list[Record]
    sent: int
    errors: list[str]
    wall: float
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
        self.results: MpQueue[tuple[str, Any]] = self.ctx.Queue()
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
            self._spawn(
                _child_huey, s, tag, sp, self.deadline, self.ready, self.results, receiver=True
            )
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
                kind, payload = self.results.get(timeout=0.5)
                if kind == "error":
                    errors.extend(payload[1])
        self.stop()
        return Outcome(self.system.key, self.spec, [], 0, errors, time.monotonic() - self.started)

    def fire(self) -> None:
        self.go.set()

    def collect(self) -> Outcome:
        records: list[Record] = []
        errors: list[str] = []
        sent = 0
        for _ in range(len(self.procs)):
            try:
                kind, payload = self.results.get(
                    timeout=max(self.deadline - time.monotonic(), 0.0) + 20
                )
            except queue.Empty:
                errors.append("timed out waiting for a process's results")
                break
            if kind == "recv":
                records.extend(payload[0])
                errors.extend(payload[1])
            elif kind == "sent":
                sent += payload[0]
                errors.extend(payload[1])
            elif kind == "both":
                records.extend(payload[0])
                sent += payload[1]
                errors.extend(payload[2])
            else:
                errors.extend(payload[1])
        wall = time.monotonic() - self.started
        self.stop()
        return Outcome(self.system.key, self.spec, records, sent, errors, wall)

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


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


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
