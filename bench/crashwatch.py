"""Crash watcher benchmark: `kill -9` of an agent's payload → container_crash in hm1nd's inbox,
for the installed hive-crashwatch.service and two pollers of `machinectl list`.

`sudo .venv/bin/python -m bench.crashwatch` boots a sandbox systemd host with the hive
installed by `hivectl install` (tests/system/hivehost.py; agents' payload
`/bin/sleep infinity`), spawns the agents with `hivectl spawn`, and runs a driver inside
the sandbox (`… inside`). Three watchers take turns as hive-crashwatch.service itself, over
the same containers and the same database:

* the unit as `hivectl install` left it (hardening, WatchdogSec, safety net: untouched);
* the same unit with a drop-in whose only change is ExecStart, running bench/crashpoll.py:
  `machinectl list` every 1 s, then every 5 s, fed into the watcher's own decision and
  durable write, so a poller differs from the real watcher only in how it notices.

Each crash: the victim's container is up (`hivectl start` after the previous crash) and in
the watcher's STATUS=; a random wait in [0, interval) puts the kill at a random phase of a
poller's poll (in [0, 1 s) for the D-Bus watcher, so every kill comes after the start has
settled); `time.time()` is taken right before `kill -9` of the payload.
Recorded per crash: the container_crash row's `created_at` (stamped in the watcher's write
transaction), when a `recv` waiting on the manager socket got it (hm1nd's inbox, through the
coordinator's doorbell), and when machined's MachineRemoved reached an independent D-Bus
listener (the floor of any D-Bus watcher). Each kill must give exactly one report, naming
that run's invocation id. Then RSS and idle CPU of the unit's main process (a poller's
reaped `machinectl` children included) and of machined + dbus-daemon, with 5 containers up.

The Markdown table goes to stdout and to bench/results/crashwatch.md, every sample to
bench/results/crashwatch.json (both git-ignored).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.host import db_value, loadavg, source_rev
from bench.stats import nearest_rank

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "crashwatch.md"
DESCRIPTION = "Crash watcher benchmark: the installed unit vs polling `machinectl list`."

VICTIM = "bench"
MACHINE = f"h-{VICTIM}"
UNIT = f"hive-agent@{VICTIM}.service"
IDLE_AGENTS = ("idle-a", "idle-b", "idle-c")
WATCHER = "hive-crashwatch.service"
DROPIN = Path(f"/run/systemd/system/{WATCHER}.d/90-bench-poller.conf")
TIMEOUT = 30.0


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# the driver, inside the sandbox
def sh(*argv: str, check: bool = True) -> str:
    out = subprocess.run(argv, capture_output=True, text=True, check=False)
    if check and out.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {out.returncode}: {out.stderr.strip()}")
    return out.stdout.strip()


def hivectl(*args: str) -> Any:
    """The hive's own CLI, from the environment this benchmark runs in."""
    return json.loads(sh(str(Path(sys.executable).parent / "hivectl"), "--json", *args))


def unit_prop(unit: str, prop: str) -> str:
    return sh("systemctl", "show", "-P", prop, unit)


def wait_for(what: str, pred: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.01)


def watched() -> set[str]:
    """The machines in the watcher's STATUS= line: `… (N: a, b)` (its own view)."""
    text = unit_prop(WATCHER, "StatusText")
    inside = text.partition("(")[2].partition(")")[0]
    return {m for m in inside.partition(": ")[2].split(", ") if m}


def poller_dropin(interval: float) -> str:
    from hyperhive.coordinator.backends.nspawn import quote

    argv = [sys.executable, "-m", "bench.crashpoll", f"{interval:g}"]
    return (
        "# bench/crashwatch.py: the same unit, a poller instead of the D-Bus watcher\n"
        "[Service]\nExecStart=\nExecStart=" + " ".join(quote(a) for a in argv) + "\n"
        f"Environment={quote(f'PYTHONPATH={ROOT}')}\n"
    )


def use_watcher(interval: float | None) -> None:
    """hive-crashwatch.service runs the real watcher (None, as installed) or a poller."""
    if interval is None:
        if not DROPIN.exists():
            return  # as `hivectl install` left it: not even restarted
        DROPIN.unlink()
    else:
        DROPIN.parent.mkdir(parents=True, exist_ok=True)
        DROPIN.write_text(poller_dropin(interval))
    sh("systemctl", "daemon-reload")
    sh("systemctl", "restart", WATCHER)


def children(pid: int) -> list[int]:
    try:
        return [int(k) for k in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def payload_pid(machine: str) -> int:
    """The container's payload: the `sleep` its stub init (PID 1, --as-pid2) started."""
    leader = int(sh("machinectl", "show", "-p", "Leader", "--value", machine))
    found: list[int] = []

    def started() -> bool:
        found[:] = children(leader)
        try:
            return len(found) == 1 and Path(f"/proc/{found[0]}/comm").read_text() == "sleep\n"
        except OSError:
            return False

    wait_for(f"{machine}'s payload", started)
    return found[0]


class Inbox:
    """hm1nd's inbox, read on the manager socket as hm1nd's harness would read it."""

    def __init__(self, path: Path) -> None:
        from hyperhive.hive.client import HiveClient

        self.client = HiveClient(path, timeout=TIMEOUT)

    def recv(self, wait: float) -> dict[str, Any] | None:
        reply = self.client.request({"cmd": "recv", "wait_seconds": wait})
        if not reply.get("ok"):
            raise RuntimeError(f"recv on the manager socket refused: {reply}")
        msg = reply.get("message")
        return None if msg is None else dict(msg)

    def drain(self) -> list[dict[str, Any]]:
        """Every event already waiting, as bodies."""
        out = []
        while (msg := self.recv(0)) is not None:
            out.append(json.loads(msg["body"]))
        return out

    def next_crash(self, timeout: float) -> tuple[float, dict[str, Any]]:
        """(time it arrived, message) of the next container_crash; other events are skipped."""
        end = time.monotonic() + timeout
        while (left := end - time.monotonic()) > 0:
            msg = self.recv(left)
            got = time.time()
            if msg is not None and json.loads(msg["body"]).get("event") == "container_crash":
                return got, msg
        raise RuntimeError(f"no container_crash in hm1nd's inbox within {timeout:g} s")

    def close(self) -> None:
        self.client.close()


class RemovalListener(threading.Thread):
    """An independent D-Bus subscriber: when machined's MachineRemoved reached a listener."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.seen: dict[str, float] = {}
        self.cond = threading.Condition()

    def run(self) -> None:
        from pystemd.dbuslib import DBus

        def on_signal(msg: Any, error: Any = None, userdata: Any = None) -> None:
            got = time.time()  # pystemd wants a plain function here, not a bound method
            msg.process_reply(True)
            with self.cond:
                self.seen.setdefault(msg.body[0].decode(), got)
                self.cond.notify_all()

        bus = DBus()
        bus.open()
        bus.match_signal(
            b"org.freedesktop.machine1",
            b"/org/freedesktop/machine1",
            b"org.freedesktop.machine1.Manager",
            b"MachineRemoved",
            on_signal,
        )
        while True:
            while not bus.process().is_empty():
                pass
            select.select([bus.get_fd()], [], [])

    def forget(self, machine: str) -> None:
        with self.cond:
            self.seen.pop(machine, None)

    def when(self, machine: str, timeout: float = 5) -> float:
        with self.cond:
            if not self.cond.wait_for(lambda: machine in self.seen, timeout):
                raise RuntimeError(f"the listener did not see {machine} go")
            return self.seen[machine]


@dataclass
class Result:
    name: str
    interval: float | None
    written: list[float] = field(default_factory=list)  # kill → the row's created_at
    delivered: list[float] = field(default_factory=list)  # kill → hm1nd's recv returned it
    floor: list[float] = field(default_factory=list)  # kill → MachineRemoved at a listener
    kills: int = 0
    reports: int = 0  # container_crash events of the victim, counted after the idle window
    wrong_run: int = 0  # reports whose note names another run of the unit
    rss_kib: int = 0
    anon_kib: int = 0
    cpu_percent: float = 0.0
    daemon_cpu_percent: float = 0.0
    idle_seconds: float = 0.0


@dataclass
class Rig:
    """What every measurement uses: the database, hm1nd's inbox, the D-Bus listener."""

    db: Path
    inbox: Inbox
    listener: RemovalListener


def agent_state(rig: Rig, agent: str) -> str:
    return str(db_value(rig.db, "SELECT state FROM agents WHERE name = ?", agent))


def ensure_up(rig: Rig, agent: str) -> None:
    """Start the agent again if the coordinator shows it failed (after a crash)."""
    if agent_state(rig, agent) == "failed":
        hivectl("start", agent)


def crash_once(rig: Rig, r: Result, interval: float | None) -> None:
    ensure_up(rig, VICTIM)
    wait_for(f"{r.name} watching {MACHINE}", lambda: MACHINE in watched())
    run = unit_prop(UNIT, "InvocationID")
    payload = payload_pid(MACHINE)
    time.sleep(random.uniform(0, interval or 1.0))  # a random phase of a poll; quiet for all
    rig.inbox.drain()  # events of the restart; a leftover crash report is counted at the end
    rig.listener.forget(MACHINE)
    t0 = time.time()
    os.kill(payload, signal.SIGKILL)
    r.kills += 1
    arrived, msg = rig.inbox.next_crash(3 * (interval or 1) + 10)
    body = json.loads(msg["body"])
    if body.get("agent") != VICTIM or run not in str(body.get("note")):
        r.wrong_run += 1
    r.written.append(float(msg["created_at"]) - t0)
    r.delivered.append(arrived - t0)
    r.floor.append(rig.listener.when(MACHINE) - t0)
    wait_for(  # the coordinator took the crash in; only then may `hivectl start` follow
        f"the coordinator to show {VICTIM} failed", lambda: agent_state(rig, VICTIM) == "failed"
    )
    log(f"{r.name}: crash {r.kills}: {1000 * r.written[-1]:.1f} ms")


def cpu_ticks(pid: int) -> int:
    """utime + stime + cutime + cstime (reaped children included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(fields[i]) for i in (11, 12, 13, 14))


def memory_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, RssAnon) in KiB."""
    mem = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon"):
            mem[key] = int(value.split()[0])
    return mem.get("VmRSS", 0), mem.get("RssAnon", 0)


def daemon_ticks() -> int:
    """CPU ticks of machined and the bus daemon (what a poller makes them do)."""
    pids = [unit_prop(u, "MainPID") for u in ("systemd-machined.service", "dbus.service")]
    return sum(cpu_ticks(int(p)) for p in pids if p not in ("", "0"))


def idle_usage(rig: Rig, r: Result, seconds: float) -> None:
    """The watcher's RSS and CPU with every container up and nothing happening."""
    ensure_up(rig, VICTIM)
    everyone = {MACHINE, "hm1nd", *(f"h-{a}" for a in IDLE_AGENTS)}
    wait_for(f"{r.name} watching all containers", lambda: everyone <= watched())
    time.sleep(1)
    pid = int(unit_prop(WATCHER, "MainPID"))
    ticks, daemons, began = cpu_ticks(pid), daemon_ticks(), time.monotonic()
    time.sleep(seconds)
    ticks, daemons = cpu_ticks(pid) - ticks, daemon_ticks() - daemons
    took = time.monotonic() - began
    hz = os.sysconf("SC_CLK_TCK")
    r.cpu_percent = 100 * ticks / hz / took
    r.daemon_cpu_percent = 100 * daemons / hz / took
    r.rss_kib, r.anon_kib = memory_kib(pid)
    r.idle_seconds = took


def measure(rig: Rig, name: str, interval: float | None, count: int, idle: float) -> Result:
    use_watcher(interval)
    r = Result(name=name, interval=interval)
    last_event = db_value(rig.db, "SELECT coalesce(max(id), 0) FROM events")
    for _ in range(count):
        crash_once(rig, r, interval)
    idle_usage(rig, r, idle)  # also the window in which a late duplicate would show up
    r.reports = db_value(
        rig.db,
        "SELECT count(*) FROM events WHERE kind = 'container_crash' AND agent = ? AND id > ?",
        VICTIM,
        last_event,
    )
    return r


def run_inside(counts: tuple[int, int, int], idle: float) -> dict[str, Any]:
    from hyperhive.hive.paths import Paths

    paths = Paths.from_env()
    listener = RemovalListener()
    listener.start()
    rig = Rig(db=paths.db, inbox=Inbox(paths.manager_socket), listener=listener)
    began = time.monotonic()
    try:
        results = [
            measure(rig, "hive-crashwatch.service (D-Bus signals)", None, counts[0], idle),
            measure(rig, "poll `machinectl list` every 1 s", 1.0, counts[1], idle),
            measure(rig, "poll `machinectl list` every 5 s", 5.0, counts[2], idle),
        ]
    finally:
        use_watcher(None)
        rig.inbox.close()
    return {
        "seconds": round(time.monotonic() - began),
        "systemd": sh("systemctl", "--version").splitlines()[0],
        "results": [asdict(r) for r in results],
    }


# ---------------------------------------------------------------------------------------------
# the table
def ms(seconds: float) -> str:
    v = seconds * 1000
    return f"{v:.0f} ms" if v >= 100 else f"{v:.1f} ms"


def p99_cell(values: list[float]) -> str:
    """p99 by nearest rank; with fewer than 100 samples it is the maximum, and says so."""
    return ms(nearest_rank(values, 99)) if len(values) >= 100 else "= max"


def row(r: dict[str, Any]) -> str:
    w, d = r["written"], r["delivered"]
    return (
        f"| {r['name']} | {r['kills']} | {r['reports']} | {ms(nearest_rank(w, 50))} "
        f"| {p99_cell(w)} | {ms(max(w))} | {ms(nearest_rank(d, 50))} | {ms(max(d))} "
        f"| {ms(nearest_rank(r['floor'], 50))} "
        f"| {r['rss_kib'] / 1024:.1f} MiB ({r['anon_kib'] / 1024:.1f}) "
        f"| {r['cpu_percent']:.2f} % | {r['daemon_cpu_percent']:.2f} % |"
    )


def table(data: dict[str, Any], meta: str) -> str:
    results = data["results"]
    real = nearest_rank(results[0]["written"], 50)
    lines = [
        meta,
        "",
        "| watcher | kills | reports | p50 | p99 | max | hm1nd's recv p50 | hm1nd's recv max "
        "| MachineRemoved p50 (floor) | RSS (anon) | idle CPU | machined + dbus idle CPU |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *[row(r) for r in results],
        "",
        f"p50, p99, max: kill → the container_crash row's created_at. p99 is nearest rank and "
        f"needs 100 samples; below that the column says `= max`. Aim p50 < 100 ms for "
        f"hive-crashwatch: {'met' if real < 0.1 else 'missed'}. "
        + " ".join(
            f"{r['name']}: p50 {nearest_rank(r['written'], 50) / real:.0f}× the watcher's."
            for r in results[1:]
        ),
        f"Idle: {results[0]['idle_seconds']:.0f} s with {2 + len(IDLE_AGENTS)} containers up, "
        "% of one core from /proc ticks (10 ms); RSS = VmRSS of the unit's main process after "
        "the run, anon = RssAnon. Reports are container_crash events counted after the idle "
        "window; one per kill is the aim.",
    ]
    bad = [r["name"] for r in results if r["reports"] != r["kills"] or r["wrong_run"]]
    if bad:
        lines.append(f"**Not one report per kill for: {', '.join(bad)}.**")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# outside: boot the sandbox, install the hive, run the driver in it
def drive(args: argparse.Namespace, work: Path) -> dict[str, Any] | None:
    """Boot, install, spawn, run the driver; its results, or None (journal kept)."""
    from tests.system.hivehost import PY, booted_hive

    with booted_hive(work, settings={"HIVE_AGENT_COMMAND": "/bin/sleep infinity"}) as host:
        for name in (VICTIM, *IDLE_AGENTS):
            host.hivectl("spawn", name)
        argv = [PY, "-m", "bench.crashwatch", "inside", "--count", str(args.count)]
        argv += ["--count-1s", str(args.count_1s), "--count-5s", str(args.count_5s)]
        argv += ["--idle", str(args.idle)]
        proc = subprocess.run(
            host.sandbox.command("env", f"PYTHONPATH={ROOT}", *argv),
            stdout=subprocess.PIPE,
            text=True,
            timeout=3600,
            check=False,
        )
        if proc.returncode == 0:
            return dict(json.loads(proc.stdout))
        kept = RESULTS.with_name("crashwatch-journal.txt")
        kept.parent.mkdir(parents=True, exist_ok=True)
        kept.write_text(host.sh("journalctl -b --no-pager -o short-precise", check=False))
        log(f"the driver failed; the sandbox's journal is in {kept.relative_to(ROOT)}")
        return None


def run_outside(args: argparse.Namespace) -> int:
    if os.geteuid() != 0 or shutil.which("systemd-nspawn") is None:
        log("bench.crashwatch: needs root and systemd-nspawn (systemd-container)")
        return 1
    work = Path(tempfile.mkdtemp(prefix="hive-cw-bench-"))
    load, when, rev = loadavg(), f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC", source_rev(ROOT)
    try:
        data = drive(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if data is None:
        return 1
    meta = (
        f"Run {when}, {data['seconds']} s, {rev}: "
        f"`python -m bench.crashwatch --count {args.count} --count-1s {args.count_1s} "
        f"--count-5s {args.count_5s} --idle {args.idle:g}`. {os.cpu_count()} CPUs, "
        f"Linux {platform.release()}, Python {platform.python_version()}, {data['systemd']}. "
        f"Load average (1, 5, 15 min) before: {load}; after: {loadavg()}."
    )
    text = table(data, meta)
    print(text, end="")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)
    RESULTS.with_suffix(".json").write_text(json.dumps(data))  # every sample, for a reader
    log(f"written to {RESULTS.relative_to(ROOT)} (samples: crashwatch.json)")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.crashwatch", description=DESCRIPTION)
    sub = ap.add_subparsers(dest="mode")
    inside = sub.add_parser("inside", help="the driver, inside the sandbox")
    for p in (ap, inside):
        p.add_argument("--count", type=int, default=100, help="crashes for hive-crashwatch")
        p.add_argument("--count-1s", type=int, default=30, help="crashes for the 1 s poller")
        p.add_argument("--count-5s", type=int, default=12, help="crashes for the 5 s poller")
        p.add_argument("--idle", type=float, default=60.0, help="seconds of idle sampling")
    args = ap.parse_args(argv)
    if args.mode == "inside":
        counts = (args.count, args.count_1s, args.count_5s)
        print(json.dumps(run_inside(counts, args.idle)))
        return 0
    return run_outside(args)


if __name__ == "__main__":
    sys.exit(main())
