"""Capacity benchmark: how many real agents one host holds, and what each one costs.

`sudo .venv/bin/python -m bench.capacity` boots a sandbox systemd host with the hive installed
by `hivectl install` (tests/system/hivehost.py, in a network namespace of its own), gives
its model gateway the local Messages API stand-in (tests/fakeapi, started inside the
sandbox), and runs a driver inside the sandbox (`… inside`) that
grows the hive in steps (default 10, 25, 50, 100 agents in all). Every agent is a real
nspawn container (`hive-agent@NAME.service`, user namespace, volatile root) running the real
harness. At each step:

* spawn: the step's new agents are asked for at once (admin `spawn`, `wait: false`); the
  time until the coordinator shows all of them running, and until every new harness has
  reported its turn state idle (it is up and waiting in `recv`);
* memory per agent: PSS (/proc/PID/smaps_rollup) of every process in the agent's unit
  cgroup — systemd-nspawn, the container's stub init and the harness — for the new agents
  waiting since their start, and again for all agents after the load below (every harness
  has run turns); the cgroup's memory.current beside it (page cache and kernel memory too);
* idle CPU: % of one core used by the whole sandbox (its root cgroup's cpu.stat: the hive's
  services, every container, journald, machined, D-Bus) and by the agents' slice alone, over
  a quiet window with every agent waiting;
* admin `list` and dashboard `GET /` round trips (p50, p95), with every agent waiting;
* first turns: one message to each new agent at once, until every turn is over (a
  harness's first turn imports the SDK: the cold start);
* load: then, for a fixed time, one operator message to each agent in turn, paced so each agent
  gets one every `--period` seconds; each starts a short turn against the stand-in (a plain
  `end_turn`). Broker delivery is `claimed_at - created_at` of those messages (the harness's
  `recv` got it); p99 by nearest rank; the sandbox's CPU during the load;
* crash: `kill -9` of a new agent's harness → the container_crash event's `created_at`
  (the crash watcher's durable write), a few times, each agent started again after.

Every agent keeps the default private network and reaches the stand-in through the model
gateway (`hive-gateway.service`, which holds the stand-in's key and URL from
`/etc/hyperhive/credentials.env`); hm1nd's turns (one per Spawned event) run too. CPU is
counted from process ticks (the sandbox's cgroups may be v1, with no per-unit CPU
accounting). The Markdown table goes to
stdout and bench/results/capacity.md, every number to bench/results/capacity.json (both
git-ignored); `… plot` draws docs/img/capacity.png from that file.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.crashwatch import children, hivectl, log, sh, wait_for
from bench.host import loadavg, source_rev
from bench.stats import nearest_rank
from bench.web import timed

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "capacity.md"
PLOT = ROOT / "docs" / "img" / "capacity.png"
STEPS = (10, 25, 50, 100)
CGROUP = Path("/sys/fs/cgroup")
CREDENTIALS = Path("/etc/hyperhive/credentials.env")
WEB_PORT = 7800
"""The dashboard's port on the sandbox's own loopback (its network namespace is its own)."""


def name_of(i: int) -> str:
    return f"cap-{i:03d}"


# ---------------------------------------------------------------------------------------------
# the driver, inside the sandbox
class Hive:
    """The installed hive seen from inside the sandbox: its admin socket, database and pages."""

    def __init__(self, web_port: int) -> None:
        from hyperhive.hive.client import HiveClient
        from hyperhive.hive.paths import Paths

        from tests.browser.webtest import WebClient

        self.paths = Paths.from_env()
        self.admin = HiveClient(self.paths.admin_socket, timeout=120)
        self.web = WebClient("127.0.0.1", web_port)
        self.web.login(hivectl("login")["url"])

    def call(self, cmd: str, **fields: Any) -> dict[str, Any]:
        return self.admin.call(cmd, **fields)

    def rows(self) -> dict[str, dict[str, Any]]:
        return {r["name"]: r for r in self.call("list")["agents"]}

    def wait_until(self, what: str, done: Callable[[dict[str, dict[str, Any]]], bool]) -> None:
        """Block on the admin `watch` (no polling) until `done(rows)` holds."""
        after = -1
        deadline = time.monotonic() + 900
        while not done(self.rows()):
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}")
            after = int(self.call("watch", after=after, wait_seconds=5)["changes"])

    def db(self, sql: str, *args: object) -> list[tuple[Any, ...]]:
        import sqlite3

        conn = sqlite3.connect(f"file:{self.paths.db}?mode=ro", uri=True, timeout=10)
        try:
            return list(conn.execute(sql, args).fetchall())
        finally:
            conn.close()


def unit_cgroup(name: str) -> str:
    """The unit's control group path, e.g. /system.slice/…/hive-agent@NAME.service."""
    return sh("systemctl", "show", "-P", "ControlGroup", f"hive-agent@{name}.service")


def cgroup_dir(rel: str, *hierarchies: str) -> Path | None:
    """`rel` in the first of `hierarchies` mounted here (cgroup v2 is "", v1 by name)."""
    for h in hierarchies:
        d = CGROUP / h / rel.lstrip("/")
        if d.is_dir():
            return d
    return None


def cgroup_pids(rel: str) -> list[int]:
    """Every process in the control group `rel` and below (v2, or v1's systemd hierarchy)."""
    group = cgroup_dir(rel, "unified", "systemd", "")
    pids: list[int] = []
    for procs in group.rglob("cgroup.procs") if group is not None else ():
        try:
            pids += [int(p) for p in procs.read_text().split()]
        except OSError:
            continue
    return pids


def pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def agent_memory(name: str) -> dict[str, float]:
    """PSS of every process of the agent's unit (MiB), and the control group's charged
    memory where the memory controller is on for it (page cache and kernel memory too)."""
    rel = unit_cgroup(name)
    pids = cgroup_pids(rel)
    current = math.nan
    for h, file in (("", "memory.current"), ("memory", "memory.usage_in_bytes")):
        group = cgroup_dir(rel, h)
        if group is not None and (group / file).exists():
            current = int((group / file).read_text()) / 2**20
            break
    return {"pss": sum(pss_kib(p) for p in pids) / 1024, "current": current, "procs": len(pids)}


def ticks(pids: list[int]) -> dict[int, int]:
    """utime + stime + cutime + cstime of each process still there."""
    out = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[pid] = sum(int(f) for f in fields[11:15])
    return out


def sandbox_pids() -> list[int]:
    """Every process of the sandbox's own control groups: not this driver nor the API
    stand-in (both entered from outside, they sit above the sandbox's root group)."""
    return cgroup_pids("/")


def agent_pids() -> list[int]:
    return cgroup_pids(sh("systemctl", "show", "-P", "ControlGroup", "system-hive\\x2dagent.slice"))


class CpuWindow:
    """% of one core used from `__init__` to `stop()` by the whole sandbox and by the agents'
    processes (process ticks: a process that exits inside the window is not counted)."""

    def __init__(self) -> None:
        self.before = {"sandbox": ticks(sandbox_pids()), "agents": ticks(agent_pids())}
        self.t = time.monotonic()

    def stop(self) -> dict[str, float]:
        took = time.monotonic() - self.t
        hz = os.sysconf("SC_CLK_TCK")
        after = {"sandbox": ticks(sandbox_pids()), "agents": ticks(agent_pids())}
        return {
            k: 100 * sum(v - self.before[k].get(pid, 0) for pid, v in after[k].items()) / hz / took
            for k in after
        }


def cpu_percent(seconds: float) -> dict[str, float]:
    window = CpuWindow()
    time.sleep(seconds)
    return window.stop()


def spawn_step(hive: Hive, names: list[str]) -> dict[str, float]:
    t0 = time.perf_counter()
    for name in names:
        hive.call("spawn", name=name, wait=False)
    asked = time.perf_counter() - t0

    def settled(rows: dict[str, dict[str, Any]]) -> bool:
        return all(n in rows and rows[n]["state"] != "spawning" for n in names)

    hive.wait_until("the spawns to settle", settled)
    running_s = time.perf_counter() - t0
    rows = hive.rows()
    failed = [f"{n}: {rows[n]['note']}" for n in names if rows[n]["state"] != "running"]
    if failed:
        raise RuntimeError(f"{len(failed)} spawns failed, e.g. {failed[0]}")

    def waiting(rows: dict[str, dict[str, Any]]) -> bool:
        return all((rows[n].get("turn") or {}).get("state") == "idle" for n in names)

    hive.wait_until("every new harness to report idle", waiting)
    return {"asked_s": asked, "running_s": running_s, "harness_s": time.perf_counter() - t0}


def all_idle(names: list[str]) -> Callable[[dict[str, dict[str, Any]]], bool]:
    """Every one of `names` has an empty inbox and its harness waits (its turn is over)."""
    return lambda rows: all(
        rows[n]["inbox"] == 0 and (rows[n].get("turn") or {}).get("state") == "idle" for n in names
    )


def first_turns(hive: Hive, names: list[str]) -> float:
    """One message to each of `names` at once; seconds until all their turns are over. A
    harness's first turn imports the SDK (it waits without it), so this is the cold start."""
    t0, wall = time.perf_counter(), time.time()
    for name in names:
        hive.call("send", to=name, body="first")

    def ended(rows: dict[str, dict[str, Any]]) -> bool:
        turns = [rows[n].get("turn") or {} for n in names]
        return all(t.get("state") == "idle" and (t.get("ended_at") or 0) > wall for t in turns)

    hive.wait_until("the first turns to end", ended)
    return time.perf_counter() - t0


def load(hive: Hive, names: list[str], seconds: float, period: float) -> dict[str, Any]:
    """One message to each agent in turn, each agent one every `period` s, for `seconds`."""
    gap = period / len(names)
    sent: list[int] = []
    t0 = time.monotonic()
    window = CpuWindow()
    i = 0
    while (now := time.monotonic()) - t0 < seconds:
        due = t0 + i * gap
        if due > now:
            time.sleep(due - now)
        sent.append(int(hive.call("send", to=names[i % len(names)], body=f"ping {i}")["id"]))
        i += 1
    cpu = window.stop()
    marks = ",".join("?" * len(sent))
    hive.wait_until(  # every message taken in by its harness (acked), every turn over
        "the load's turns to end",
        lambda rows: (
            all_idle(names)(rows)
            and not hive.db(
                f"SELECT 1 FROM messages WHERE id IN ({marks}) AND delivered_at IS NULL", *sent
            )
        ),
    )
    rows = hive.db(
        f"SELECT created_at, coalesce(claimed_at, delivered_at) FROM messages "
        f"WHERE id IN ({','.join('?' * len(sent))})",
        *sent,
    )
    delivery = [1000 * (b - a) for a, b in rows if b is not None]
    return {"sent": len(sent), "delivered": len(delivery), "delivery_ms": delivery, "cpu": cpu}


CRASH_EVENT = (
    "SELECT created_at FROM events WHERE kind = 'container_crash' AND agent = ? AND id > ?"
)


def crash_once(hive: Hive, name: str) -> float:
    """kill -9 of `name`'s harness → its container_crash event's created_at (ms); then it is
    started again and waits for messages."""
    leader = int(sh("machinectl", "show", "-p", "Leader", "--value", f"h-{name}"))
    payload = children(leader)[0]
    last = hive.db("SELECT coalesce(max(id), 0) FROM events")[0][0]
    t0 = time.time()
    os.kill(payload, signal.SIGKILL)
    wait_for(f"{name}'s crash event", lambda: bool(hive.db(CRASH_EVENT, name, last)), 30)
    took = 1000 * (hive.db(CRASH_EVENT, name, last)[0][0] - t0)
    hive.wait_until(f"{name} shown failed", lambda rows: rows[name]["state"] == "failed")
    hive.call("start", name=name)
    hive.wait_until(
        f"{name} running again",
        lambda rows: (
            rows[name]["state"] == "running"
            and (rows[name].get("turn") or {}).get("state") == "idle"
        ),
    )
    return float(took)


def run_inside(args: argparse.Namespace) -> None:
    hive = Hive(WEB_PORT)
    hive.wait_until("hm1nd to run", lambda rows: rows.get("hm1nd", {}).get("state") == "running")
    have: list[str] = []
    for total in (int(s) for s in args.steps.split(",")):
        new = [name_of(i) for i in range(len(have), total)]
        log(f"step {total}: spawning {len(new)}")
        step: dict[str, Any] = {"agents": total, "new": len(new), **spawn_step(hive, new)}
        have += new
        time.sleep(args.settle)
        step["mem_new"] = [agent_memory(n) for n in new]
        step["idle_cpu"] = cpu_percent(args.idle)
        step["list_ms"] = timed(lambda: hive.call("list"), args.samples)
        step["dashboard_ms"] = timed(lambda: hive.web.get("/"), args.samples)
        step["first_turns_s"] = first_turns(hive, new)
        log(f"step {total}: load for {args.load:g} s")
        step["load"] = load(hive, have, args.load, args.period)
        time.sleep(args.settle)
        step["mem_all"] = [agent_memory(n) for n in have]
        step["idle_cpu_after"] = cpu_percent(args.idle)
        victims = random.sample(new, min(args.crashes, len(new)))
        step["crash_ms"] = [crash_once(hive, n) for n in victims]
        step["meminfo_available_mib"] = (
            int(
                next(
                    line.split()[1]
                    for line in Path("/proc/meminfo").read_text().splitlines()
                    if line.startswith("MemAvailable:")
                )
            )
            / 1024
        )
        print(json.dumps(step), flush=True)
        log(f"step {total}: done")


# ---------------------------------------------------------------------------------------------
# the table
def p(values: list[float], q: float) -> str:
    return f"{nearest_rank(values, q):.0f}" if values else "–"


def table(steps: list[dict[str, Any]], meta: str) -> str:
    lines = [
        meta,
        "",
        "| agents | new, spawned together | all running | all harnesses waiting "
        "| PSS per new agent, waiting since start (MiB) | PSS per agent after turns (MiB) "
        "| memory.current per agent after turns (MiB) | idle CPU, whole sandbox (agents) "
        "| `list` p50 / p95 (ms) | `GET /` p50 / p95 (ms) | first turns of the new "
        "| load: msgs, CPU | delivery p50 / p99 "
        "(ms) | crash event p50 / max (ms) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in steps:
        new = [m["pss"] for m in s["mem_new"]]
        after = [m["pss"] for m in s["mem_all"]]
        current = [m["current"] for m in s["mem_all"]]
        d = s["load"]["delivery_ms"]
        lines.append(
            f"| {s['agents']} | {s['new']} | {s['running_s']:.1f} s | {s['harness_s']:.1f} s "
            f"| {nearest_rank(new, 50):.1f} | {nearest_rank(after, 50):.1f} "
            f"| {'–' if math.isnan(c := nearest_rank(current, 50)) else f'{c:.1f}'} "
            f"| {s['idle_cpu']['sandbox']:.1f} % ({s['idle_cpu']['agents']:.1f} %) "
            f"| {p(s['list_ms'], 50)} / {p(s['list_ms'], 95)} "
            f"| {p(s['dashboard_ms'], 50)} / {p(s['dashboard_ms'], 95)} "
            + (f"| {s['first_turns_s']:.1f} s " if "first_turns_s" in s else "| – ")
            + f"| {s['load']['sent']}, {s['load']['cpu']['sandbox']:.0f} % "
            f"| {p(d, 50)} / {p(d, 99)} | {p(s['crash_ms'], 50)} / {max(s['crash_ms']):.0f} |"
        )
    return "\n".join(lines) + "\n"


def plot(steps: list[dict[str, Any]], out: Path) -> None:
    """The curve (matplotlib, from the bench extra): memory per agent and the time to bring
    the step's agents up, against the number of agents; CPU and latencies beside them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = [s["agents"] for s in steps]
    fig, (mem, spawn, cpu, lat) = plt.subplots(1, 4, figsize=(16, 3.8))
    after = [sum(m["pss"] for m in s["mem_all"]) / 1024 for s in steps]
    waiting = [
        nearest_rank([m["pss"] for m in s["mem_new"]], 50) * s["agents"] / 1024 for s in steps
    ]
    mem.plot(n, after, "o-", label="every agent after turns")
    mem.plot(n, waiting, "s--", label="every agent waiting since start")
    mem.set(xlabel="agents", ylabel="GiB PSS", title="memory of the agents")
    mem.legend()
    spawn.plot(n, [s["harness_s"] for s in steps], "o-")
    for s in steps:
        spawn.annotate(f"+{s['new']}", (s["agents"], s["harness_s"]), textcoords="offset points",
                       xytext=(4, -10))  # fmt: skip
    spawn.set(xlabel="agents", ylabel="s", title="the step's new agents: all waiting")
    cpu.plot(n, [s["idle_cpu"]["sandbox"] for s in steps], "o-", label="idle")
    cpu.plot(
        n,
        [s["load"]["cpu"]["sandbox"] for s in steps],
        "s-",
        label="light load (first turns if not apart)",
    )
    cpu.set(xlabel="agents", ylabel="% of one core", title="CPU, whole sandbox")
    cpu.legend()
    for key, label in (("list_ms", "`list` p95"), ("dashboard_ms", "GET / p95")):
        lat.plot(n, [nearest_rank(s[key], 95) for s in steps], "o-", label=label)
    lat.plot(n, [nearest_rank(s["crash_ms"], 50) for s in steps], "s--", label="crash event p50")
    lat.set(xlabel="agents", ylabel="ms", title="latency")
    lat.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=90)


# ---------------------------------------------------------------------------------------------
# outside: boot the sandbox, install the hive, start the stand-in, run the driver in it
def drive(args: argparse.Namespace, work: Path) -> list[dict[str, Any]]:
    from tests.system.hivehost import PY, booted_hive

    steps: list[dict[str, Any]] = []
    with booted_hive(
        work, settings={"HIVE_WEB_LISTEN": f"127.0.0.1:{WEB_PORT}"}, private_network=True
    ) as host:
        api = subprocess.Popen(
            host.sandbox.command(
                "env", f"PYTHONPATH={ROOT}", PY, "-c",
                "import sys, time\nfrom tests.fakeapi.server import FakeAnthropic\n"
                "api = FakeAnthropic()\nprint(api.url, flush=True)\ntime.sleep(1e9)\n",
            ),
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert api.stdout is not None
            url = api.stdout.readline().strip()
            from tests.fakeapi.server import API_KEY

            host.sh(
                f"umask 077; printf 'ANTHROPIC_API_KEY={API_KEY}\\nANTHROPIC_BASE_URL={url}\\n'"
                f" > {CREDENTIALS}"
            )
            host.sh("systemctl restart hive-gateway.service")  # it reads the key at start
            argv = [PY, "-m", "bench.capacity", "inside", "--steps", args.steps]
            for k in ("settle", "idle", "samples", "load", "period", "crashes"):
                argv += [f"--{k}", str(getattr(args, k))]
            proc = subprocess.Popen(
                host.sandbox.command("env", f"PYTHONPATH={ROOT}", *argv),
                stdout=subprocess.PIPE,
                text=True,
            )
            assert proc.stdout is not None
            for line in proc.stdout:
                steps.append(json.loads(line))
                RESULTS.parent.mkdir(parents=True, exist_ok=True)
                RESULTS.with_suffix(".json").write_text(json.dumps(steps))
            if proc.wait() != 0:
                log(f"the driver exited {proc.returncode} after {len(steps)} steps")
                kept = RESULTS.with_name("capacity-journal.txt")
                kept.write_text(host.sh("journalctl -b --no-pager -n 3000", check=False))
        finally:
            api.terminate()
            api.wait(30)
    return steps


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.capacity", description=__doc__)
    ap.add_argument("mode", nargs="?", choices=["inside", "plot"])
    ap.add_argument("--steps", default=",".join(map(str, STEPS)), help="agents in all, per step")
    ap.add_argument("--settle", type=float, default=5.0, help="seconds before measuring")
    ap.add_argument("--idle", type=float, default=30.0, help="seconds of idle CPU sampling")
    ap.add_argument("--samples", type=int, default=60, help="`list` and `GET /` round trips")
    ap.add_argument("--load", type=float, default=60.0, help="seconds of message load")
    ap.add_argument("--period", type=float, default=15.0, help="seconds between one agent's msgs")
    ap.add_argument("--crashes", type=int, default=3, help="kills per step")
    args = ap.parse_args(argv)
    if args.mode == "inside":
        run_inside(args)
        return 0
    if args.mode == "plot":  # from the last run's numbers
        plot(json.loads(RESULTS.with_suffix(".json").read_text()), PLOT)
        return 0
    if os.geteuid() != 0 or shutil.which("systemd-nspawn") is None:
        log("bench.capacity: needs root and systemd-nspawn (systemd-container)")
        return 1
    work = Path(tempfile.mkdtemp(prefix="hive-cap-bench-"))
    load0, when, rev = loadavg(), f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC", source_rev(ROOT)
    try:
        steps = drive(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if not steps:
        return 1
    meta = (
        f"Run {when}, {rev}: `python -m bench.capacity --steps {args.steps} --idle {args.idle:g} "
        f"--load {args.load:g} --period {args.period:g}`. {os.cpu_count()} CPUs, "
        f"Linux {platform.release()}, Python {platform.python_version()}. Load average "
        f"(1, 5, 15 min) before: {load0}; after: {loadavg()} (other work shares this machine)."
    )
    text = table(steps, meta)
    print(text, end="")
    RESULTS.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
