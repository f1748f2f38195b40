"""The crash watcher's decision against a real SQLite file: what is a crash, reported once."""

from __future__ import annotations

import datetime
import json
import socket
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from hyperhive.crashwatch import watcher as watcher_mod
from hyperhive.crashwatch.journal import MAX_LINE, format_entry
from hyperhive.crashwatch.machined import _rows
from hyperhive.crashwatch.units import CLD_DUMPED, CLD_EXITED, CLD_KILLED, UnitStatus, unit_of
from hyperhive.crashwatch.watcher import CrashWatcher, Verdict, agent_of
from hyperhive.hive import db
from hyperhive.hive.events import ContainerCrash, from_json

RUN1 = "0f" * 16
RUN2 = "a1" * 16


def failed(
    unit: str,
    run: str = RUN1,
    status: int = 255,
    result: str = "exit-code",
    code: int = CLD_EXITED,
) -> UnitStatus:
    return UnitStatus(
        unit=unit,
        load_state="loaded",
        active_state="failed",
        sub_state="failed",
        result=result,
        exec_main_code=code,
        exec_main_status=status,
        invocation_id=run,
    )


def active(unit: str, run: str = RUN1) -> UnitStatus:
    return UnitStatus(
        unit=unit,
        load_state="loaded",
        active_state="active",
        sub_state="running",
        invocation_id=run,
    )


class FakeHost:
    """machined, systemd and the journal as the watcher sees them, set by the test."""

    def __init__(self) -> None:
        self.up: set[str] = set()
        self.units: dict[str, list[UnitStatus]] = {}
        self.lines = ["12:00:00 Traceback (most recent call last):", "12:00:00 boom"]
        self.reads = 0

    def machines(self) -> set[str]:
        return set(self.up)

    def unit_status(self, unit: str) -> UnitStatus:
        self.reads += 1
        seq = self.units.get(unit)
        if not seq:
            return UnitStatus(unit=unit)
        return seq.pop(0) if len(seq) > 1 else seq[0]

    def journal_tail(self, unit: str, invocation_id: str) -> list[str]:
        return list(self.lines)

    # test helpers
    def start(self, agent: str, run: str = RUN1) -> str:
        machine = "hm1nd" if agent == "hm1nd" else f"h-{agent}"
        self.up.add(machine)
        self.units[unit_of(agent)] = [active(unit_of(agent), run)]
        return machine

    def crash(self, agent: str, run: str = RUN1) -> str:
        machine = "hm1nd" if agent == "hm1nd" else f"h-{agent}"
        self.up.discard(machine)
        self.units[unit_of(agent)] = [failed(unit_of(agent), run)]
        return machine


@pytest.fixture
def dbpath(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "state" / "hive.db"
    conn = db.open_db(path)
    yield path
    conn.close()


@pytest.fixture
def host() -> FakeHost:
    return FakeHost()


@pytest.fixture
def doorbell(tmp_path: Path) -> Iterator[socket.socket]:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(tmp_path / "doorbell.sock"))
    s.setblocking(False)
    yield s
    s.close()


@pytest.fixture
def w(host: FakeHost, dbpath: Path, tmp_path: Path) -> CrashWatcher:
    return CrashWatcher(host, tmp_path / "doorbell.sock", sleep=lambda s: None)


def agent(name: str, state: str = "running") -> None:
    db.Agent.create(name=name, kind="manager" if name == "hm1nd" else "agent", state=state)


def running(w: CrashWatcher, host: FakeHost, name: str = "alice", state: str = "running") -> str:
    """An agent row, its container up and seen by the watcher; returns the machine name."""
    agent(name, state)
    machine = host.start(name)
    w.machine_new(machine)
    return machine


def crash_messages(dbpath: Path) -> list[dict[str, str]]:
    """container_crash bodies in hm1nd's inbox, read over a separate connection."""
    with sqlite3.connect(dbpath) as conn:
        rows = conn.execute("SELECT sender, recipient, body FROM messages ORDER BY id").fetchall()
    out = []
    for sender, recipient, body in rows:
        assert (sender, recipient) == ("system", "hm1nd")
        event = from_json(body)
        assert isinstance(event, ContainerCrash)
        out.append({"agent": event.agent, "note": event.note})
    return out


def test_running_without_transient_is_a_crash(
    w: CrashWatcher, host: FakeHost, dbpath: Path, doorbell: socket.socket
) -> None:
    running(w, host)
    assert w.watching() == ["h-alice"]
    assert w.machine_removed(host.crash("alice")) is Verdict.CRASH
    [msg] = crash_messages(dbpath)
    assert msg["agent"] == "alice"
    note = msg["note"]
    assert "hive-agent@alice.service failed" in note
    assert "result exit-code" in note
    assert "exited with status 255" in note
    assert f"_SYSTEMD_INVOCATION_ID={RUN1}" in note
    assert note.endswith("12:00:00 Traceback (most recent call last):\n12:00:00 boom")
    assert doorbell.recv(16) == b"ring"
    with sqlite3.connect(dbpath) as conn:
        assert conn.execute("SELECT kind, agent FROM notifications").fetchall() == [
            ("container_crash", "alice")
        ]
        [(payload,)] = conn.execute("SELECT payload FROM events").fetchall()
        assert json.loads(payload)["event"] == "container_crash"
        # the watcher never writes the agents table: the coordinator does
        assert conn.execute("SELECT state FROM agents").fetchall() == [("running",)]
    assert w.watching() == []


def test_message_is_durable_before_the_doorbell_rings(
    w: CrashWatcher, host: FakeHost, dbpath: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen_at_ring: list[int] = []

    def ring(path: Path) -> bool:
        with sqlite3.connect(dbpath) as other:
            seen_at_ring.append(other.execute("SELECT count(*) FROM messages").fetchone()[0])
        return True

    monkeypatch.setattr(watcher_mod, "ring_doorbell", ring)
    running(w, host)
    assert w.machine_removed(host.crash("alice")) is Verdict.CRASH
    assert seen_at_ring == [1]


@pytest.mark.parametrize("state", ["stopping", "restarting", "destroying", "rebuilding"])
def test_transient_state_is_not_a_crash(
    w: CrashWatcher, host: FakeHost, dbpath: Path, state: str
) -> None:
    running(w, host)
    db.TransientState.create(agent="alice", state=state)
    assert w.machine_removed(host.crash("alice")) is Verdict.TRANSIENT
    assert crash_messages(dbpath) == []


@pytest.mark.parametrize("state", ["stopped", "failed", "spawning", "destroyed"])
def test_agent_not_running_is_not_a_crash(
    w: CrashWatcher, host: FakeHost, dbpath: Path, state: str
) -> None:
    running(w, host, state=state)
    assert w.machine_removed(host.crash("alice")) is Verdict.NOT_RUNNING
    assert crash_messages(dbpath) == []


def test_unknown_machines_are_not_crashes(w: CrashWatcher, host: FakeHost, dbpath: Path) -> None:
    w.machine_new(host.start("bob"))  # h-bob, but no agents row
    assert w.machine_removed(host.crash("bob")) is Verdict.NO_AGENT
    for name in ("debian-vm", "h-", "h-Bad", "h-system", "hm1nd-x"):
        w.machine_new(name)
        assert w.machine_removed(name) is Verdict.UNMANAGED
    assert crash_messages(dbpath) == []
    assert host.reads == 1  # only h-bob's unit was looked at


def test_machine_back_already_is_a_restart_race(
    w: CrashWatcher, host: FakeHost, dbpath: Path
) -> None:
    machine = running(w, host)
    host.start("alice", run=RUN2)  # removed and registered again before we judged
    assert w.machine_removed(machine) is Verdict.BACK
    assert crash_messages(dbpath) == []


def test_new_run_of_the_unit_is_a_restart_race(
    w: CrashWatcher, host: FakeHost, dbpath: Path
) -> None:
    machine = running(w, host)
    host.up.discard(machine)  # the new run has not registered its machine yet
    host.units[unit_of("alice")] = [active(unit_of("alice"), RUN2)]
    assert w.machine_removed(machine) is Verdict.BACK
    assert crash_messages(dbpath) == []


def test_duplicate_removal_is_reported_once(w: CrashWatcher, host: FakeHost, dbpath: Path) -> None:
    running(w, host)
    machine = host.crash("alice")
    assert w.machine_removed(machine) is Verdict.CRASH
    assert w.machine_removed(machine) is Verdict.UNSEEN
    assert w.reconcile(host.machines()) == []
    assert w.catch_up(host.machines()) == []
    # even a fresh watcher (after a restart of the service) does not report this run again
    again = CrashWatcher(host, None, sleep=lambda s: None)
    assert again.catch_up(host.machines()) == []
    again.machine_new(machine)
    assert again.machine_removed(machine) is Verdict.REPORTED
    assert len(crash_messages(dbpath)) == 1


def test_manager_crash_is_reported_the_same_way(
    w: CrashWatcher, host: FakeHost, dbpath: Path
) -> None:
    running(w, host, "hm1nd")
    assert w.machine_removed(host.crash("hm1nd")) is Verdict.CRASH
    [msg] = crash_messages(dbpath)
    assert msg["agent"] == "hm1nd"
    assert "hive-agent@hm1nd.service" in msg["note"]


def test_waits_for_the_unit_to_settle_before_reading_its_result(
    host: FakeHost, dbpath: Path
) -> None:
    slept: list[float] = []
    w = CrashWatcher(host, None, sleep=slept.append)
    machine = running(w, host)
    host.up.discard(machine)
    unit = unit_of("alice")
    stopping = UnitStatus(unit=unit, active_state="deactivating", invocation_id=RUN1)
    killed = failed(unit, status=9, result="signal", code=CLD_KILLED)
    host.units[unit] = [active(unit), stopping, killed]
    assert w.machine_removed(machine) is Verdict.CRASH
    assert len(slept) == 2
    [msg] = crash_messages(dbpath)
    assert "result signal, main process killed by SIGKILL" in msg["note"]


def test_a_unit_that_never_settles_is_judged_after_the_timeout(
    host: FakeHost, dbpath: Path
) -> None:
    clock = iter(range(100))
    w = CrashWatcher(
        host, None, settle_timeout=5, sleep=lambda s: None, clock=lambda: float(next(clock))
    )
    machine = running(w, host)
    host.up.discard(machine)  # machine gone, the same run of the unit lingers
    assert w.machine_removed(machine) is Verdict.CRASH
    assert "hive-agent@alice.service active" in crash_messages(dbpath)[0]["note"]


def test_reconcile_judges_machines_that_vanished_unseen(
    w: CrashWatcher, host: FakeHost, dbpath: Path
) -> None:
    agent("alice")
    agent("bob")
    w.reconcile({host.start("alice"), host.start("bob", RUN2)})
    assert w.watching() == ["h-alice", "h-bob"]
    host.crash("bob", RUN2)
    assert w.reconcile(host.machines()) == [("h-bob", Verdict.CRASH)]
    assert w.watching() == ["h-alice"]
    assert [m["agent"] for m in crash_messages(dbpath)] == ["bob"]


def test_catch_up_reports_a_failed_unit_missed_while_nobody_watched(
    w: CrashWatcher, host: FakeHost, dbpath: Path
) -> None:
    agent("alice")
    agent("bob")  # its unit is merely inactive (the host just booted): not a crash
    agent("carol", "stopped")
    db.TransientState.create(agent="dave", state="stopping")
    agent("dave")
    host.crash("alice")
    host.crash("carol")
    host.crash("dave")
    assert w.catch_up(host.machines()) == [("h-alice", Verdict.CRASH)]
    [msg] = crash_messages(dbpath)
    assert "found on a later check: nobody saw it go" in msg["note"]
    assert w.catch_up(host.machines()) == []


def test_a_crash_during_an_operator_action_is_found_once_it_is_over(
    w: CrashWatcher, host: FakeHost, dbpath: Path
) -> None:
    running(w, host)
    db.TransientState.create(agent="alice", state="restarting")
    # the restart's new run dies at once, while the restart still holds its transient state
    assert w.machine_removed(host.crash("alice", RUN2)) is Verdict.TRANSIENT
    assert w.catch_up(host.machines()) == []
    db.TransientState.delete().execute()  # the coordinator finished, the agent is "running"
    assert w.catch_up(host.machines()) == [("h-alice", Verdict.CRASH)]
    assert w.catch_up(host.machines()) == []
    [msg] = crash_messages(dbpath)
    assert f"_SYSTEMD_INVOCATION_ID={RUN2}" in msg["note"]


def test_catch_up_rechecks_the_unit_inside_the_transaction(
    w: CrashWatcher, host: FakeHost, dbpath: Path
) -> None:
    agent("alice")
    unit = unit_of("alice")
    # failed when first read, restarted (a new run) by the time the write lock is held
    host.units[unit] = [failed(unit), active(unit, RUN2)]
    assert w.catch_up(set()) == [("h-alice", Verdict.BACK)]
    assert crash_messages(dbpath) == []


def test_a_bus_failure_while_judging_keeps_the_machine_in_view(
    w: CrashWatcher, host: FakeHost, dbpath: Path
) -> None:
    machine = running(w, host)
    host.crash("alice")

    def down() -> set[str]:
        raise ConnectionError("bus down")

    host.machines = down  # type: ignore[method-assign]
    with pytest.raises(ConnectionError):
        w.machine_removed(machine)
    assert w.watching() == ["h-alice"]
    del host.machines
    assert w.reconcile(host.machines()) == [("h-alice", Verdict.CRASH)]


def test_agent_of() -> None:
    assert agent_of("h-alice") == "alice"
    assert agent_of("hm1nd") == "hm1nd"
    assert agent_of("h-hm1nd") is None
    assert agent_of("alice") is None
    assert agent_of("h-a_b") is None
    assert agent_of(".host") is None


def test_describe_exit() -> None:
    unit = "hive-agent@alice.service"
    assert failed(unit, status=3).describe() == (
        f"{unit} failed (result exit-code, main process exited with status 3)"
    )
    dumped = failed(unit, status=11, result="core-dump", code=CLD_DUMPED)
    assert "main process dumped core on SIGSEGV" in dumped.describe()
    assert UnitStatus(unit=unit).describe() == f"{unit} is gone (no result recorded)"


def test_journal_lines_are_short_and_stamped() -> None:
    when = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    line = format_entry({"MESSAGE": "x" * 1000, "__REALTIME_TIMESTAMP": when})
    stamp, text = line.split(" ", 1)
    assert len(stamp) == 8 and len(text) == MAX_LINE
    assert format_entry({"MESSAGE": b"raw \xff bytes"}) == "raw \ufffd bytes"


def test_list_machines_reply_shapes() -> None:
    row = (b"h-alice", b"container", b"systemd-nspawn", b"/org/freedesktop/machine1/machine/x")
    assert _rows([row]) == [row]
    assert _rows(([row],)) == [row]
    assert _rows(None) == []
