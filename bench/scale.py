"""Scale benchmark: the coordinator and the dashboard with 1,000 agents against 100, in one run.

`.venv/bin/python -m bench.scale` builds one hive per size (default 100 and 1,000 agents),
each a fresh database with every agent running a trivial payload (`sleep infinity`, process
backend) and the same history: 100,000 messages spread evenly over the agents (one in 20
still waiting in an inbox), 1,000 approvals (200 pending, each with a diff), 500
notifications. Each hive has a real coordinator and a real hive-web, with a dashboard
stream open, so the live hub re-renders on every change. Both hives run at once and every
measurement alternates between them sample by sample, so the two sizes see the same load
and their ratio comes from one run:

* admin `list` over the socket;
* GET / and GET /agent/<name> (an agent with the average share of messages): with nothing
  changed, and right after a change (a `send` to another agent) before and after that
  change's re-render reached the dashboard stream (as in bench/web.py);
* push: admin `send` → the SSE patch of the agent's page carrying the new message.

It also reports how long each coordinator took from its start to serving with all its
agents running (it starts them again, as after a restart), and the size of each page.
The Markdown table goes to stdout and to bench/results/scale.md (git-ignored).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hyperhive.hive import db
from hyperhive.hive.agentconfig import CONFIG_FILE, template
from hyperhive.hive.client import HiveClient
from hyperhive.hive.paths import Paths
from hyperhive.hive.platform import platform_rev, write_marker

from bench.host import loadavg, source_rev
from bench.stats import nearest_rank, publish
from bench.web import DIFF, PatchClock
from tests.browser.webtest import RunningWeb, SSEReader, WebClient
from tests.hivetest import RunningHive, hive_env, reap_agents

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "scale.md"
SIZES = (100, 1000)
MESSAGES = 100_000
APPROVALS = 1000
PENDING = 200
NOTIFICATIONS = 500
WAITING_SHARE = 20
"""One message in this many is still waiting in its inbox."""
READY_TIMEOUT = 600.0
"""Seconds a coordinator may take to start all its agents and serve."""


def name_of(i: int) -> str:
    return f"agent-{i:04d}"


HOT = name_of(0)
"""The agent whose page is measured (it has the average share of messages)."""


def other_of(agents: int) -> str:
    """The agent the "right after a change" sends go to: one with a pending approval, which
    the index lists first (it lists at most 100 agents, those needing the operator first),
    and not HOT, at every size."""
    return name_of((APPROVALS - PENDING + 1) % agents)


def fill(paths: Paths, agents: int, messages: int) -> None:
    """The hive, written straight into SQLite and the applied dirs before the coordinator
    starts: every agent running with its applied config and the platform's rev marker, so
    the coordinator starts each payload and rebuilds nothing."""
    db.open_db(paths.db)
    rnd = random.Random(7)
    t0 = time.time() - 86_400
    names = [name_of(i) for i in range(agents)]
    rev = platform_rev()
    for name in names:
        applied = paths.applied_repo(name)
        applied.mkdir(parents=True)
        (applied / CONFIG_FILE).write_text(template(name))
        write_marker(paths.rev_marker(name), rev)
    with db.write_tx():
        db.Agent.insert_many(
            [{"name": n, "state": "running", "created_at": t0 + i} for i, n in enumerate(names)]
        ).execute()
        db.TurnState.insert_many(
            [
                {
                    "agent": n,
                    "state": "idle",
                    "turn_started_at": t0 + i,
                    "turn_ended_at": t0 + i + 30,
                    "input_tokens": 1000 + i,
                    "output_tokens": 100 + i,
                }
                for i, n in enumerate(names)
            ]
        ).execute()
        db.Approval.insert_many(
            [
                {
                    "agent": names[i % agents],
                    "kind": "apply_commit" if i % 10 else "spawn",
                    "commit_ref": f"{i:040x}",
                    "blob": b"x",
                    "diff": f"--- a\n+++ b\n@@ -1 +1,30 @@\n{DIFF}",
                    "status": "pending" if i >= APPROVALS - PENDING else "approved",
                    "requested_at": t0 + i,
                }
                for i in range(APPROVALS)
            ]
        ).execute()
        batch = []
        for i in range(messages):
            delivered = i % WAITING_SHARE != 0
            batch.append(
                {
                    "sender": "operator" if i % 2 else rnd.choice(names),
                    "recipient": names[i % agents],
                    "body": f"message {i}: " + "lorem ipsum " * rnd.randint(2, 40),
                    "created_at": t0 + i * 0.5,
                    "delivered_at": t0 + i * 0.5 + 1 if delivered else None,
                }
            )
            if len(batch) == 1000:
                db.Message.insert_many(batch).execute()
                batch = []
        if batch:
            db.Message.insert_many(batch).execute()
        db.Notification.insert_many(
            [
                {"kind": "question", "agent": names[i % agents], "text": f"note {i}"}
                for i in range(NOTIFICATIONS)
            ]
        ).execute()
    db.database.close()


class SlowStartHive(RunningHive):
    """A coordinator that may take minutes to come up (it starts every agent first)."""

    def _wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        super()._wait_ready(timeout)


class Hive:
    """One size: its coordinator, hive-web, a signed-in client and the streams it watches."""

    def __init__(self, agents: int, messages: int) -> None:
        self.agents = agents
        self.other = other_of(agents)
        self.root = Path(tempfile.mkdtemp(prefix=f"hive-bench-scale-{agents}-"))
        self.env = hive_env(self.root)
        fill(Paths.from_env(self.env), agents, messages)
        self.hive: RunningHive | None = None
        self.web: RunningWeb | None = None
        self.admin: HiveClient | None = None
        self._streams: list[SSEReader] = []
        try:
            began = time.perf_counter()
            self.hive = SlowStartHive(self.env)
            self.started_s = time.perf_counter() - began
            self.admin = HiveClient(self.hive.paths.admin_socket, timeout=60)
            running = [r for r in self.admin.call("list")["agents"] if r["state"] == "running"]
            assert len(running) == agents + 1, f"{len(running)} of {agents} + hm1nd running"
            self.web = RunningWeb(self.env)
            self.client: WebClient = self.web.client()
            self.page_bytes = {p: len(self.get(p)) for p in ("/", f"/agent/{HOT}")}
            # a dashboard tab: the hub re-renders the index on every change, as when it is open
            self.clock = PatchClock(self._stream("/api/events?topic=index"))
            self.push = self.watch_hot()
        except BaseException:
            self.stop()
            raise

    def watch_hot(self) -> SSEReader:
        """A stream of HOT's page, opened when the push is measured: one left unread through
        the other measurements would be dropped by hive-web as a slow consumer (64 frames)."""
        return self._stream(f"/api/events?topic=agent:{HOT}")

    def _stream(self, path: str) -> SSEReader:
        assert self.web is not None
        sse = SSEReader("127.0.0.1", self.web.port, path, self.client.cookies)
        sse.event()  # the first frame: the whole state
        self._streams.append(sse)
        return sse

    def get(self, path: str) -> bytes:
        reply = self.client.request("GET", path)
        assert reply.status == 200, (path, reply.status)
        return reply.body

    def call(self, cmd: str, **fields: Any) -> dict[str, Any]:
        assert self.admin is not None
        return self.admin.call(cmd, **fields)

    def send(self, to: str) -> int:
        return int(self.call("send", to=to, body="probe")["id"])

    def stop(self) -> None:
        for sse in self._streams:
            sse.close()
        if self.admin is not None:
            with contextlib.suppress(OSError):
                self.admin.close()
        if self.web is not None:
            self.web.stop()
        if self.hive is not None:
            self.hive.stop()
        reap_agents(self.env["HIVE_RUNTIME_DIR"])
        shutil.rmtree(self.env["HIVE_RUNTIME_DIR"], ignore_errors=True)
        shutil.rmtree(self.root, ignore_errors=True)


def ms_of(fn: Callable[[], Any]) -> float:
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1000


def after_change(h: Hive, path: str) -> tuple[float | None, float]:
    """One try of each "right after a change" case (see bench/web.py): the GET sent the
    moment `send` returned (None if the change's patch arrived before it was sent), and
    the GET sent once the patch arrived."""
    h.clock.clear()
    h.send(h.other)
    t = time.perf_counter()
    h.get(path)
    before_ms = (time.perf_counter() - t) * 1000
    before = before_ms if h.clock.next() > t else None
    time.sleep(random.uniform(0.04, 0.06))  # past the hub's MIN_PUSH_GAP
    h.clock.clear()
    h.send(h.other)
    h.clock.next()
    after = ms_of(lambda: h.get(path))
    time.sleep(random.uniform(0.04, 0.06))
    return before, after


def push(h: Hive) -> float:
    """`send` to the measured agent → the agent page's SSE patch carrying that message."""
    t = time.perf_counter()
    mid = h.send(HOT)
    while True:
        _, data = h.push.event(timeout=30)
        inbox = json.loads(data).get("sections", {}).get("inbox")
        if inbox and f"msg-{mid}" in inbox["html"]:
            break
    got = (time.perf_counter() - t) * 1000
    time.sleep(random.uniform(0.01, 0.05))
    return got


def alternate(hives: list[Hive], n: int) -> Iterator[tuple[int, Hive]]:
    """(sample, hive) in the order to measure them: every sample on every hive, the hive that
    goes first swapping each time."""
    for i in range(n):
        for h in hives if i % 2 == 0 else reversed(hives):
            yield i, h


def measure(hives: list[Hive], n: int) -> dict[str, dict[int, list[float]]]:
    """Samples (ms) per measurement and size."""
    out: dict[str, dict[int, list[float]]] = {}

    def add(what: str, h: Hive, ms: float | None) -> None:
        if ms is not None:
            out.setdefault(what, {}).setdefault(h.agents, []).append(ms)

    for _, h in alternate(hives, n):
        add("admin `list`", h, ms_of(lambda h=h: h.call("list")))  # type: ignore[misc]
    for path, label in (("/", "GET / (dashboard)"), (f"/agent/{HOT}", f"GET /agent/{HOT}")):
        for _, h in alternate(hives, n):
            add(f"{label}, nothing changed", h, ms_of(lambda h=h, p=path: h.get(p)))  # type: ignore[misc]
        for _, h in alternate(hives, n):
            before, after = after_change(h, path)
            add(f"{label}, right after a change, before its re-render arrived", h, before)
            add(f"{label}, right after a change, after its re-render arrived", h, after)
    for h in hives:
        h.push.close()
        h.push = h.watch_hot()
    for _, h in alternate(hives, n):
        add("push: `send` → SSE patch with the message", h, push(h))
    return out


def table(samples: dict[str, dict[int, list[float]]], sizes: list[int]) -> list[str]:
    small, large = sizes[0], sizes[-1]
    head = (
        "| what (ms) | "
        + " | ".join(f"{s:,} agents: n | p50 | p95 | max" for s in sizes)
        + f" | p50 ratio {large:,} ÷ {small:,} | p95 ratio |"
    )
    cols = 4 * len(sizes) + 2
    lines = [head, "|---|" + "---:|" * cols]
    for what, by_size in samples.items():
        cells = []
        for s in sizes:
            ms = by_size.get(s, [])
            cells += [
                str(len(ms)),
                f"{nearest_rank(ms, 50):.1f}",
                f"{nearest_rank(ms, 95):.1f}",
                f"{max(ms):.1f}" if ms else "–",
            ]
        a, b = by_size.get(small, []), by_size.get(large, [])
        r50 = nearest_rank(b, 50) / nearest_rank(a, 50) if a and b else float("nan")
        r95 = nearest_rank(b, 95) / nearest_rank(a, 95) if a and b else float("nan")
        lines.append(f"| {what} | " + " | ".join(cells) + f" | {r50:.2f}× | {r95:.2f}× |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("-n", type=int, default=200, help="samples per measurement and size")
    parser.add_argument(
        "--sizes", default=",".join(str(s) for s in SIZES), help="agents per hive, comma-separated"
    )
    parser.add_argument("--messages", type=int, default=MESSAGES, help="messages stored per hive")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the hives on the way out
    sizes = sorted(int(s) for s in args.sizes.split(","))
    began = datetime.now(UTC)
    load_before = loadavg()
    hives: list[Hive] = []
    try:
        for size in sizes:
            hives.append(Hive(size, args.messages))
        samples = measure(hives, args.n)
    finally:
        for h in hives:
            h.stop()
    lines = [
        f"Run {began:%Y-%m-%d %H:%M} UTC, {source_rev(ROOT)}; load average before/after: "
        f"{load_before} / {loadavg()} (anything else running shares the same cores).",
        "",
        f"Per hive: {args.messages:,} messages, {APPROVALS:,} approvals ({PENDING} pending), "
        f"{NOTIFICATIONS} notifications; every agent running `sleep infinity`; "
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} cores.",
        "",
        *table(samples, sizes),
        "",
        "| hive | start to serving, all agents running | GET / bytes | GET /agent bytes |",
        "|---|---:|---:|---:|",
        *(
            f"| {h.agents:,} agents | {h.started_s:.1f} s | {h.page_bytes['/']:,} "
            f"| {h.page_bytes[f'/agent/{HOT}']:,} |"
            for h in hives
        ),
    ]
    text = "\n".join(lines)
    publish(text, RESULTS)


if __name__ == "__main__":
    main()
