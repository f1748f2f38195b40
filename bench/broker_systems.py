"""The systems the broker benchmark drives: hyperhive's coordinator and the peers a user would pick.

Each system gives the harness (`bench.broker_runs`) a sender and an inbox per receiver,
and says where its receivers live; it measures nothing itself. Every system runs SQLite at
one durability level (`PRAGMA synchronous`), set on every connection it opens and read back.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from huey import SqliteHuey
from huey.storage import SqliteStorage
from hyperhive.hive.client import HiveClient
from hyperhive.hive.db import SYNCHRONOUS_SETTING, Synchronous
from persistqueue import SQLiteAckQueue
from persistqueue.exceptions import Empty

if TYPE_CHECKING:
    from bench.broker_runs import Run

ROOT = Path(__file__).resolve().parent.parent
POLL_SECONDS = 5.0  # the naive poll loop's interval
PAD = "x" * 200  # bodies are ~230 bytes: "<seq> <sent_ns> xxx…"

DRAIN_MAX = 100_000  # a drain stops after this many messages, whatever is left


class Record(NamedTuple):
    """One message in a receiver's hands."""

    seq: int  # its sequence number; it is addressed to receiver `seq % receivers`
    sent_ns: int
    received_ns: int
    receiver: int  # the receiver that got it; -1 for huey (one queue, any worker)
    drained: bool = False  # found by the last non-blocking receive after the run


SYNC_NAMES = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
"""`PRAGMA synchronous` as SQLite reads it back, by name."""

SYNC_SEEN: list[int] = []
"""`PRAGMA synchronous` read back on each connection a peer opened in this process."""


def set_synchronous(conn: sqlite3.Connection, level: Synchronous) -> sqlite3.Connection:
    """Run `conn` at `level`, and note what SQLite reports back in SYNC_SEEN."""
    conn.execute(f"PRAGMA synchronous={level.value}")
    SYNC_SEEN.append(int(conn.execute("PRAGMA synchronous").fetchone()[0]))
    return conn


def make_body(seq: int) -> str:
    return f"{seq} {time.perf_counter_ns()} {PAD}"


def parse_body(body: str, received_ns: int, receiver: int, drained: bool = False) -> Record:
    seq, sent, _ = body.split(" ", 2)
    return Record(int(seq), int(sent), received_ns, receiver, drained)


def drain_by_recv(recv: Callable[[float], list[str]]) -> list[str]:
    """Receive without waiting until nothing comes: what was left in an inbox."""
    out: list[str] = []
    while len(out) < DRAIN_MAX:
        got = recv(0.0)
        if not got:
            break
        out.extend(got)
    return out


class Sender(Protocol):
    def send(self, receiver: int, body: str) -> None: ...

    def close(self) -> None: ...


class Inbox(Protocol):
    def recv(self, timeout: float) -> list[str]:
        """Block up to `timeout` seconds; the bodies that arrived (maybe none)."""
        ...

    def drain(self) -> list[str]:
        """Receive without waiting, until the inbox is empty; everything that was left."""
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
    level = Synchronous.NORMAL  # PRAGMA synchronous of every connection it opens
    addressed = True  # each message is for one receiver (huey: one queue, any worker)
    idle_alone = False  # its idle runs go alone: it would disturb the others' idle figures

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

    def drain(self) -> list[str]:
        return drain_by_recv(self.recv)

    def close(self) -> None:
        self.client.close()


class Hyperhive(System):
    key = "hyperhive"
    label = "hyperhive coordinator"
    note = "real coordinator process; send/recv on agent unix sockets; SQLite WAL"

    def __init__(
        self,
        work: Path,
        level: Synchronous,
        profile: Path | None = None,
        source: Path = ROOT,
    ) -> None:
        self.level = level
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

    def env(self) -> dict[str, str]:
        """The coordinator's environment."""
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
        env[SYNCHRONOUS_SETTING] = self.level.value
        env.pop("HIVE_DB", None)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(self.source), env.get("PYTHONPATH", "")) if p
        )
        return env

    def read_synchronous(self) -> int:
        """`PRAGMA synchronous` of a connection `open_db` makes under the coordinator's
        environment and code, read in a separate process (the coordinator's own connections
        cannot be asked from outside)."""
        code = (
            "import sys\n"
            "from hyperhive.hive.db import open_db\n"
            "print(open_db(sys.argv[1], create=False).pragma('synchronous'))\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", code, str(self.state / "hive.db")],
            env=self.env(),
            cwd=self.source,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        return int(done.stdout.strip())

    def start(self) -> None:
        env = self.env()
        cmd = [sys.executable]
        if self.profile is not None:
            cmd += ["-m", "cProfile", "-o", str(self.profile)]
        cmd += ["-m", "hyperhive.coordinator"]
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


class _SyncedAckQueue(SQLiteAckQueue):  # type: ignore[misc]
    """SQLiteAckQueue whose every connection runs at the benchmark's synchronous level."""

    def __init__(self, *args: Any, level: Synchronous, **kwargs: Any) -> None:
        self.level = level  # before super().__init__(), which opens the connections
        super().__init__(*args, **kwargs)

    def _new_db_connection(self, path: str, multithreading: bool, timeout: float) -> Any:
        conn = super()._new_db_connection(path, multithreading, timeout)
        return set_synchronous(conn, self.level)


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

    def drain(self) -> list[str]:
        return drain_by_recv(self.recv)

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

    def __init__(self, root: Path, level: Synchronous) -> None:
        self.root = root
        self.level = level
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
            i: _SyncedAckQueue(
                str(self.root / tag),
                name=f"r{i}",
                multithreading=True,
                auto_commit=True,
                level=self.level,
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


class _SyncedSqliteStorage(SqliteStorage):  # type: ignore[misc]
    """huey's SQLite storage with every connection at the benchmark's synchronous level
    (huey's own `fsync` option knows only FULL and OFF)."""

    def __init__(self, *args: Any, level: Synchronous, **kwargs: Any) -> None:
        self.level = level  # before super().__init__(), which opens a connection
        super().__init__(*args, **kwargs)

    def _create_connection(self) -> sqlite3.Connection:
        return set_synchronous(super()._create_connection(), self.level)


class Huey(System):
    """huey's SqliteHuey: one queue; the receivers are the real consumer's worker threads."""

    key = "huey"
    label = "huey SqliteHuey + huey consumer"
    topology = "huey"
    addressed = False
    note = (
        "one queue; N receivers = N worker threads of one consumer process; its latency is "
        "its consumer's default poll (0.1 s after work, ×1.15 per empty poll, ≤ 10 s), which "
        "a user can lower (the consumer's `initial_delay` and `max_delay`)"
    )
    poll: float | None = None  # the consumer's initial_delay = max_delay; None: huey's defaults

    def __init__(self, root: Path, level: Synchronous) -> None:
        self.root = root
        self.level = level

    def consumer_options(self) -> dict[str, float]:
        """Keyword arguments of huey's consumer: how often an idle worker polls the queue."""
        return {} if self.poll is None else {"initial_delay": self.poll, "max_delay": self.poll}

    def app(self, tag: str, sink: list[Record] | None, done: Callable[[], None] | None) -> Any:
        """(huey, task) for the run `tag`; the task appends a record to `sink`."""
        huey = SqliteHuey(
            name=tag,
            filename=str(self.root / "huey.db"),
            results=False,
            storage_class=_SyncedSqliteStorage,
            level=self.level,
        )

        def deliver(body: str) -> None:
            now = time.perf_counter_ns()
            if sink is not None:
                sink.append(parse_body(body, now, -1))
            if done is not None:
                done()

        return huey, huey.task(name="deliver")(deliver)

    def prepare(self, tag: str, receivers: int, senders: int) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    def sender(self, tag: str, index: int, receivers: int) -> Sender:
        huey, task = self.app(tag, None, None)
        return _HueySender(task, huey)


class HueyFastPoll(Huey):
    """huey with its consumer's poll lowered to 1 ms: a user's way to cut its latency."""

    key = "huey-1ms"
    label = "huey SqliteHuey + huey consumer, poll lowered to 1 ms"
    note = (
        "as above with `initial_delay` = `max_delay` = 1 ms: every idle worker thread "
        "queries SQLite about 1,000 times a second"
    )
    poll = 0.001
    idle_alone = True


# naive 5 s poll loop ---------------------------------------------------------------------------


def _connect(path: Path, level: Synchronous) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), timeout=5, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=wal")
    return set_synchronous(conn, level)


class _PollSender:
    def __init__(self, db: Path, tag: str, level: Synchronous) -> None:
        self.conn = _connect(db, level)
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

    def __init__(self, db: Path, recipient: str, level: Synchronous) -> None:
        self.conn = _connect(db, level)
        self.recipient = recipient
        self.next_poll = 0.0

    def recv(self, timeout: float) -> list[str]:
        wait = self.next_poll - time.monotonic()
        if wait > 0:
            time.sleep(min(wait, max(timeout, 0.0)))
            if time.monotonic() < self.next_poll:
                return []
        return self.poll()

    def drain(self) -> list[str]:
        return self.poll()  # now, whenever the next poll was due

    def poll(self) -> list[str]:
        """Claim every undelivered row of this recipient, in one transaction."""
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

    def __init__(self, db: Path, level: Synchronous) -> None:
        self.db = db
        self.level = level

    def prepare(self, tag: str, receivers: int, senders: int) -> None:
        self.db.parent.mkdir(parents=True, exist_ok=True)
        conn = _connect(self.db, self.level)
        conn.execute(
            "CREATE TABLE IF NOT EXISTS messages (id INTEGER PRIMARY KEY, recipient TEXT NOT "
            "NULL, body TEXT NOT NULL, created_at REAL NOT NULL, delivered_at REAL)"
        )
        conn.execute(
            "CREATE INDEX IF NOT EXISTS messages_inbox ON messages (recipient, delivered_at, id)"
        )
        conn.close()

    def sender(self, tag: str, index: int, receivers: int) -> Sender:
        return _PollSender(self.db, tag, self.level)

    def inbox(self, tag: str, index: int) -> Inbox:
        return _PollInbox(self.db, f"{tag}-{index}", self.level)
