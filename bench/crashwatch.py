"""Crash watcher benchmark: payload death → container_crash in hm1nd's inbox, against pollers.

`.venv/bin/python -m bench.crashwatch` (root, systemd-nspawn installed) boots a sandbox
systemd host (services.sandbox) and runs the measurement inside it, where three watchers
take turns, each as a systemd unit over the same SQLite file:

* hive-crashwatch: the real service (machined's MachineRemoved over D-Bus);
* a poller running `machinectl list` every 1 s, and one every 5 s. The pollers feed what
  disappeared into the same decision and the same durable write (services.crashwatch.watcher),
  so they differ from the real one only in how they notice.

Each crash: `hive-agent@bench.service` runs systemd-nspawn with a `sleep` payload, the
container registers, the watcher shows it in its STATUS= line, then (pollers only) a random
delay in [0, interval) so the kill falls at a random phase of the poll; `time.time()` is
taken right before `kill -9` of the payload, and the latency is the container_crash row's
`created_at` minus that. The time machined's MachineRemoved reached an independent listener
is recorded too (the floor any D-Bus watcher has). Then RSS and idle CPU (utime+stime over
a window with containers up and nothing happening) of each watcher.

The Markdown table goes to stdout and to bench/results/crashwatch.md (git-ignored).
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import select
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.stats import nearest_rank, p99_label

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "crashwatch.md"
DESCRIPTION = "Crash watcher benchmark: D-Bus signals vs polling `machinectl list`."

AGENT = "bench"
MACHINE = f"h-{AGENT}"
UNIT = f"hive-agent@{AGENT}.service"
IDLE_AGENTS = ("idle-a", "idle-b", "idle-c")
WATCHDOG_SEC = 30
TIMEOUT = 20.0


# ---------------------------------------------------------------------------------------------
# the pollers (run inside the sandbox as a unit: python -m bench.crashwatch poll SECONDS)
class PollingHost:
    """The watcher's Host with machined's list from `machinectl list`, as a poller would."""

    def machines(self) -> set[str]:
        out = subprocess.run(
            ["machinectl", "list", "--no-legend", "--no-pager"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return {line.split()[0] for line in out.splitlines() if line.strip()}

    def unit_status(self, unit: str) -> Any:
        from services.crashwatch.units import read_unit

        return read_unit(unit)

    def journal_tail(self, unit: str, invocation_id: str) -> list[str]:
        from services.crashwatch.journal import last_lines

        return last_lines(unit, invocation_id)


def run_poller(interval: float) -> int:
    from services.crashwatch.watcher import CrashWatcher
    from services.hive import sd
    from services.hive.db import open_db
    from services.hive.paths import Paths

    paths = Paths.from_env()
    open_db(paths.db)
    host = PollingHost()
    watcher = CrashWatcher(host, paths.doorbell)
    stop = False

    def on_term(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    watcher.reconcile(host.machines())
    sd.ready(f"polling every {interval:g} s ({', '.join(watcher.watching())})")
    next_tick = time.monotonic()
    while not stop:
        try:
            watcher.reconcile(host.machines())
        except Exception:  # as the real service does: log, keep going, judge again next tick
            traceback.print_exc()
        sd.notify(
            f"WATCHDOG=1\nSTATUS=polling every {interval:g} s ({', '.join(watcher.watching())})"
        )
        next_tick += interval
        delay = next_tick - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            next_tick = time.monotonic()
    return 0


# ---------------------------------------------------------------------------------------------
# the driver inside the sandbox
def sh(*argv: str, check: bool = True) -> str:
    out = subprocess.run(argv, capture_output=True, text=True, check=False)
    if check and out.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {out.returncode}: {out.stderr.strip()}")
    return out.stdout.strip()


def wait_for(
    what: str, pred: Callable[[], bool], timeout: float = TIMEOUT, step: float = 0.002
) -> None:
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(step)


def unit_prop(unit: str, prop: str) -> str:
    return sh("systemctl", "show", "-P", prop, unit)


class RemovalListener(threading.Thread):
    """An independent D-Bus subscriber: when MachineRemoved reached a listener."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.seen: dict[str, list[float]] = {}
        self._cb: Any = None

    def run(self) -> None:
        from pystemd.dbuslib import DBus

        bus = DBus()
        bus.open()

        def cb(msg: Any, error: Any = None, userdata: Any = None) -> None:
            msg.process_reply(True)
            self.seen.setdefault(msg.body[0].decode(), []).append(time.time())

        self._cb = cb
        bus.match_signal(
            b"org.freedesktop.machine1",
            b"/org/freedesktop/machine1",
            b"org.freedesktop.machine1.Manager",
            b"MachineRemoved",
            cb,
        )
        while True:
            for _ in range(8):
                bus.process()
            select.select([bus.get_fd()], [], [], 0.05)


@dataclass
class Result:
    name: str
    interval: float | None
    latencies: list[float] = field(default_factory=list)
    signal_latencies: list[float] = field(default_factory=list)
    rss_kib: int = 0
    anon_kib: int = 0
    cpu_percent: float = 0.0
    daemon_cpu_percent: float = 0.0
    idle_seconds: float = 0.0
    wall: float = 0.0


def container_argv(agent: str, script: str) -> list[str]:
    """A fake agent container: hive-agent@<agent>.service running systemd-nspawn on the
    host's /usr, registered with machined as the hive names it, with `sh -c script` as
    its payload (PID 2). Shared with tests/system/test_crashwatch.py.
    """
    machine = agent if agent == "hm1nd" else f"h-{agent}"
    return [
        "systemd-run",
        "--quiet",
        f"--unit=hive-agent@{agent}.service",
        "--property=Delegate=yes",
        "systemd-nspawn",
        "--quiet",
        "-D",
        "/",
        "--volatile=yes",
        "-M",
        machine,
        "--as-pid2",
        "--keep-unit",
        "--register=yes",
        "/bin/sh",
        "-c",
        script,
    ]


def start_container(agent: str, machine: str) -> int:
    """Start a fake container and wait until it registered; returns the payload's PID."""
    sh("systemctl", "reset-failed", f"hive-agent@{agent}.service", check=False)
    sh(*container_argv(agent, f"echo {agent} is up; exec sleep 100000"))
    wait_for(f"{machine} registered", lambda: sh("machinectl", "show", machine, check=False) != "")
    leader = int(sh("machinectl", "show", "-p", "Leader", "--value", machine))
    found: list[int] = []

    def payload() -> bool:
        try:
            kids = Path(f"/proc/{leader}/task/{leader}/children").read_text().split()
            found[:] = [int(k) for k in kids]
            return len(found) == 1 and Path(f"/proc/{found[0]}/comm").read_text().strip() == "sleep"
        except OSError:
            return False

    wait_for(f"{machine}'s payload", payload)
    return found[0]


def last_message_id(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT max(id) FROM messages").fetchone()
    return int(row[0] or 0)


def crash_row(db: Path, after: int) -> float | None:
    with sqlite3.connect(db) as conn:
        row = conn.execute(
            "SELECT created_at FROM messages WHERE id > ? AND sender = 'system'"
            " AND recipient = 'hm1nd' AND body LIKE '%\"container_crash\"%' ORDER BY id LIMIT 1",
            (after,),
        ).fetchone()
    return float(row[0]) if row else None


def proc_sample(pid: int) -> tuple[int, int, int]:
    """(CPU ticks incl. reaped children, VmRSS KiB, RssAnon KiB) of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(fields[i]) for i in (11, 12, 13, 14))  # utime stime cutime cstime
    mem = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon"):
            mem[key] = int(value.split()[0])
    return ticks, mem.get("VmRSS", 0), mem.get("RssAnon", 0)


def daemon_ticks() -> int:
    """CPU ticks of machined and the bus daemon (what a poller makes them do)."""
    total = 0
    for unit in ("systemd-machined.service", "dbus.service"):
        pid = int(unit_prop(unit, "MainPID") or 0)
        if pid:
            total += proc_sample(pid)[0]
    return total


def start_watcher(unit: str, argv: list[str], env: dict[str, str]) -> None:
    sh(
        "systemd-run",
        "--quiet",
        f"--unit={unit}",
        "-p",
        "Type=notify",
        "-p",
        "NotifyAccess=main",
        "-p",
        f"WatchdogSec={WATCHDOG_SEC}",
        f"--working-directory={ROOT}",
        *[f"--setenv={k}={v}" for k, v in env.items()],
        *argv,
    )


def measure(
    name: str,
    unit: str,
    interval: float | None,
    count: int,
    idle_seconds: float,
    db: Path,
    listener: RemovalListener,
    env: dict[str, str],
) -> Result:
    argv = [sys.executable, "-m", "services.crashwatch"]
    if interval is not None:
        argv = [sys.executable, "-m", "bench.crashwatch", "poll", str(interval)]
    start_watcher(unit, argv, env)
    result = Result(name=name, interval=interval, idle_seconds=idle_seconds)
    began = time.monotonic()
    try:
        for i in range(count):
            payload = start_container(AGENT, MACHINE)
            wait_for(f"{name} watching {MACHINE}", lambda: MACHINE in unit_prop(unit, "StatusText"))
            if interval is not None:
                time.sleep(random.uniform(0, interval))
            before = last_message_id(db)
            listener.seen.pop(MACHINE, None)
            t0 = time.time()
            os.kill(payload, signal.SIGKILL)
            created: list[float] = []

            def reported(after: int = before, created: list[float] = created) -> bool:
                got = crash_row(db, after)
                if got is not None:
                    created.append(got)
                return got is not None

            wait_for(f"{name}: crash {i + 1} reported", reported, timeout=3 * (interval or 1) + 10)
            result.latencies.append(created[0] - t0)
            wait_for("the listener", lambda: MACHINE in listener.seen, timeout=5)
            result.signal_latencies.append(listener.seen[MACHINE][0] - t0)
            wait_for(f"{UNIT} settled", lambda: unit_prop(UNIT, "ActiveState") != "active")
            log(f"{name}: crash {i + 1}/{count}: {1000 * result.latencies[-1]:.1f} ms")
        result.wall = time.monotonic() - began
        for agent in IDLE_AGENTS:  # idle with a few containers watched
            start_container(agent, f"h-{agent}")
        pid = int(unit_prop(unit, "MainPID"))
        wait_for(
            f"{name} watching the idle containers",
            lambda: all(f"h-{a}" in unit_prop(unit, "StatusText") for a in IDLE_AGENTS),
        )
        time.sleep(1)
        ticks0, _, _ = proc_sample(pid)
        daemons0 = daemon_ticks()
        t = time.monotonic()
        time.sleep(idle_seconds)
        ticks1, rss, anon = proc_sample(pid)
        daemons1 = daemon_ticks()
        took = time.monotonic() - t
        hz = os.sysconf("SC_CLK_TCK")
        result.cpu_percent = 100 * (ticks1 - ticks0) / hz / took
        result.daemon_cpu_percent = 100 * (daemons1 - daemons0) / hz / took
        result.rss_kib, result.anon_kib = rss, anon
    finally:
        sh("systemctl", "stop", unit, check=False)
        for agent in IDLE_AGENTS:
            sh("systemctl", "stop", f"hive-agent@{agent}.service", check=False)
            sh("systemctl", "reset-failed", f"hive-agent@{agent}.service", check=False)
    return result


def ms(seconds: float) -> str:
    v = seconds * 1000
    return f"{v:.0f} ms" if v >= 100 else f"{v:.1f} ms"


def table(results: list[Result], header: str) -> str:
    lines = [
        header,
        "",
        f"| watcher | crashes | p50 | {p99_label(results[0].latencies)} | max "
        "| MachineRemoved p50 (floor) "
        "| RSS (anon) | idle CPU | idle CPU of machined + dbus |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.name} | {len(r.latencies)} | {ms(nearest_rank(r.latencies, 50))} "
            f"| {ms(nearest_rank(r.latencies, 99))} | {ms(max(r.latencies))} "
            f"| {ms(nearest_rank(r.signal_latencies, 50))} "
            f"| {r.rss_kib / 1024:.1f} MiB ({r.anon_kib / 1024:.1f}) "
            f"| {r.cpu_percent:.2f} % | {r.daemon_cpu_percent:.2f} % |"
        )
    event = results[0]
    aim = nearest_rank(event.latencies, 50) < 0.1
    lines += [
        "",
        f"Aim: p50 < 100 ms for hive-crashwatch: {'met' if aim else 'missed'}. "
        f"Idle CPU over {event.idle_seconds:g} s with {len(IDLE_AGENTS)} containers up "
        f"(% of one core; a poller's `machinectl` children included); RSS = VmRSS after "
        "the run, anon = RssAnon (the rest is shared library and journal file pages).",
    ]
    return "\n".join(lines) + "\n"


def run_inside(root: Path, counts: tuple[int, int, int], idle: float) -> str:
    from services.hive.db import Agent, open_db

    state, runtime = root / "state", root / "run"
    runtime.mkdir(parents=True, exist_ok=True)
    db = state / "hive.db"
    conn = open_db(db)
    for name in (AGENT, *IDLE_AGENTS, "hm1nd"):
        Agent.insert(name=name, state="running").on_conflict_replace().execute()
    conn.close()
    env = {"HIVE_STATE_DIR": str(state), "HIVE_RUNTIME_DIR": str(runtime), "PYTHONPATH": str(ROOT)}
    listener = RemovalListener()
    listener.start()
    began = time.monotonic()
    load = os.getloadavg()
    results = [
        measure("hive-crashwatch (D-Bus signals)", "hive-crashwatch.service", None, counts[0],
                idle, db, listener, env),
        measure("poll `machinectl list` every 1 s", "bench-poll-1s.service", 1.0, counts[1],
                idle, db, listener, env),
        measure("poll `machinectl list` every 5 s", "bench-poll-5s.service", 5.0, counts[2],
                idle, db, listener, env),
    ]  # fmt: skip
    took = time.monotonic() - began
    load_after = os.getloadavg()
    header = (
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {took:.0f} s. Machine: {os.cpu_count()} "
        f"CPUs, Linux {platform.release()}, Python {platform.python_version()}, "
        f"{sh('systemctl', '--version').splitlines()[0]}. Load average before/after: "
        f"{' '.join(f'{x:.2f}' for x in load)} / {' '.join(f'{x:.2f}' for x in load_after)}.\n\n"
        "Latency = the container_crash row's created_at − time.time() right before `kill -9` "
        "of the payload; every watcher makes the same decision and the same durable write."
    )
    return table(results, header)


# ---------------------------------------------------------------------------------------------
# outside: boot the sandbox and run the driver in it
def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def run_outside(args: argparse.Namespace) -> int:
    from services.sandbox.host import SandboxHost

    if os.geteuid() != 0 or shutil.which("systemd-nspawn") is None:
        print(
            "bench.crashwatch: needs root and systemd-nspawn (systemd-container)", file=sys.stderr
        )
        return 1
    work = Path(tempfile.mkdtemp(prefix="hive-cw-bench-"))
    extra = {
        p
        for p in (Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve())
        if not (p.is_relative_to("/usr") or p.is_relative_to(ROOT))
    }
    host = SandboxHost(
        f"hive-cw-bench-{os.getpid()}",
        binds=[ROOT, work],
        binds_ro=sorted(extra),
        log_path=work / "boot.log",
    )
    try:
        host.boot()
        argv = [sys.executable, "-m", "bench.crashwatch", "inside", str(work)]
        argv += ["--count", str(args.count), "--count-1s", str(args.count_1s)]
        argv += ["--count-5s", str(args.count_5s), "--idle", str(args.idle)]
        proc = subprocess.run(
            host.command("sh", "-c", f'cd {ROOT} && exec "$@"', "sh", *argv),
            stdout=subprocess.PIPE,
            text=True,
            timeout=1800,
            check=False,
        )
        if proc.returncode != 0:
            print(proc.stdout)
            journal = host.run("journalctl", "-b", "--no-pager", "-o", "short-precise", check=False)
            RESULTS.parent.mkdir(parents=True, exist_ok=True)
            kept = RESULTS.with_name("crashwatch-journal.txt")
            kept.write_text(journal.stdout)
            log(f"failed; the sandbox's journal is in {kept.relative_to(ROOT)}")
            return proc.returncode
        print(proc.stdout, end="")
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(proc.stdout)
        log(f"written to {RESULTS.relative_to(ROOT)}")
        return 0
    finally:
        host.poweroff()
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.crashwatch", description=DESCRIPTION)
    sub = ap.add_subparsers(dest="mode")
    inside = sub.add_parser("inside", help="the driver, inside the sandbox")
    for p in (ap, inside):
        p.add_argument("--count", type=int, default=50, help="crashes for hive-crashwatch")
        p.add_argument("--count-1s", type=int, default=30, help="crashes for the 1 s poller")
        p.add_argument("--count-5s", type=int, default=12, help="crashes for the 5 s poller")
        p.add_argument("--idle", type=float, default=15.0, help="seconds of idle CPU sampling")
    inside.add_argument("root", type=Path)
    poll = sub.add_parser("poll", help="a `machinectl list` poller (a unit in the sandbox)")
    poll.add_argument("interval", type=float)
    args = ap.parse_args(argv)
    if args.mode == "poll":
        return run_poller(args.interval)
    if args.mode == "inside":
        print(run_inside(args.root, (args.count, args.count_1s, args.count_5s), args.idle), end="")
        return 0
    return run_outside(args)


if __name__ == "__main__":
    sys.exit(main())
