"""Dashboard benchmark: page render and change-to-browser push latency on a large hive.

`.venv/bin/python -m bench.web` fills a fresh database with 200 agents (with turn states),
1,000 approvals (200 pending, each with a diff) and 10,000 messages, starts a real
coordinator (process backend) and a real hive-web, then measures over loopback:

* render: GET / and GET /agent/<name> round trips, with a dashboard stream open (so the
  live hub re-renders on every change): with nothing changed (the agent rows cached),
  and right after a change (a `send` to another agent, which alters its row), twice:
  sent the moment `send` returns, before the change's SSE patch arrives (the hub is
  still re-rendering, or has not yet seen the change), and sent after that patch arrived
  (the hub's re-render has already fetched the rows again with the admin `list`);
* push: admin `send` → the SSE patch carrying the new message (a raw SSE client), and
  → the message row in chromium's DOM (Playwright, when Debian's chromium is installed);
  each probe waits for its arrival before the next is sent.

The Markdown table goes to stdout and to bench/results/web.md (git-ignored).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import queue
import random
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hyperhive.hive import db
from hyperhive.hive.paths import Paths

from bench.host import loadavg, source_rev
from bench.stats import nearest_rank, publish
from tests.browser.webtest import CHROMIUM, RunningWeb, SSEReader, launch_chromium
from tests.hivetest import RunningHive, hive_env

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "web.md"
AGENTS = 200
APPROVALS = 1000
PENDING = 200
MESSAGES = 10_000
NOTIFICATIONS = 500
HOT = "agent-000"  # the agent whose page is measured; 2,000 of the messages are its
DIFF = "".join(f'+packages = ["pkg{i}"]\n' for i in range(30))


def fill(paths: Paths) -> None:
    """The large hive, written straight into SQLite before the coordinator starts."""
    db.open_db(paths.db)
    rnd = random.Random(7)
    t0 = time.time() - 86_400
    names = [f"agent-{i:03d}" for i in range(AGENTS)]
    with db.write_tx():
        for i, name in enumerate(names):
            db.Agent.create(name=name, state="failed" if i % 3 else "stopped")
            db.TurnState.create(
                agent=name,
                state="idle",
                turn_started_at=t0 + i,
                turn_ended_at=t0 + i + 30,
                input_tokens=1000 + i,
                output_tokens=100 + i,
            )
        for i in range(APPROVALS):
            db.Approval.create(
                agent=names[i % AGENTS],
                kind="apply_commit" if i % 10 else "spawn",
                commit_ref=f"{i:040x}",
                blob=b"x",
                diff=f"--- a\n+++ b\n@@ -1 +1,30 @@\n{DIFF}",
                status="pending" if i >= APPROVALS - PENDING else "approved",
                requested_at=t0 + i,
            )
        for i in range(MESSAGES):
            hot = i % 5 == 0
            sender = "operator" if i % 2 else rnd.choice(names)
            recipient = HOT if hot else rnd.choice(names)
            db.Message.create(
                sender=sender,
                recipient=recipient,
                body=f"message {i}: " + "lorem ipsum " * rnd.randint(2, 40),
                created_at=t0 + i,
                delivered_at=t0 + i + 1,
            )
        for i in range(NOTIFICATIONS):
            db.Notification.create(kind="question", agent=names[i % AGENTS], text=f"note {i}")
    db.database.close()


def row(name: str, ms: list[float]) -> str:
    return (
        f"| {name} | {len(ms)} | {nearest_rank(ms, 50):.1f} | {nearest_rank(ms, 95):.1f} "
        f"| {max(ms):.1f} |"
    )


def timed(fn: Callable[[], Any], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


class PatchClock:
    """When each patch of the dashboard's stream that re-renders the agent rows arrived.

    The hub sends such a patch after its re-render for a change has fetched the rows
    (admin `list`) and rendered them: its arrival marks that re-render as finished.
    """

    def __init__(self, sse: SSEReader) -> None:
        self.sse = sse
        self.arrivals: queue.Queue[float] = queue.Queue()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        with contextlib.suppress(OSError, EOFError, ValueError):  # the stream was closed
            while True:
                event, data = self.sse.event(timeout=3600)
                if event == "patch" and "agents" in json.loads(data).get("sections", {}):
                    self.arrivals.put(time.perf_counter())

    def clear(self) -> None:
        with contextlib.suppress(queue.Empty):
            while True:
                self.arrivals.get_nowait()

    def next(self) -> float:
        """perf_counter() at the arrival of the next rows patch (waits up to 10 s)."""
        return self.arrivals.get(timeout=10)


def after_change(
    get: Callable[[], Any], send: Callable[[], Any], clock: PatchClock, n: int
) -> tuple[list[float], list[float], int]:
    """Page times right after a change: sent the moment `send` returned and before the
    change's patch arrived, and sent after it arrived; and how many of the first kind of
    try saw the patch arrive first (they are left out)."""
    before: list[float] = []
    after: list[float] = []
    late = 0
    for _ in range(n):
        clock.clear()
        send()
        t = time.perf_counter()
        get()
        ms = (time.perf_counter() - t) * 1000
        if clock.next() > t:
            before.append(ms)
        else:
            late += 1
        time.sleep(random.uniform(0.04, 0.06))  # past MIN_PUSH_GAP: the hub is watching again
        clock.clear()
        send()
        clock.next()
        after += timed(get, 1)
        time.sleep(random.uniform(0.04, 0.06))
    return before, after, late


def render(web: RunningWeb, hive: RunningHive, n: int) -> tuple[list[str], list[str]]:
    """Table rows, and a sentence per page on the tries left out of the "before" row."""
    c = web.client()
    for path in ("/", f"/agent/{HOT}"):
        assert c.get(path).status == 200
    # a subscriber keeps the hub rendering live, as with the dashboard open
    keep = SSEReader("127.0.0.1", web.port, "/api/events?topic=index", c.cookies)
    keep.event()
    clock = PatchClock(keep)
    out = []
    notes = []
    try:
        for path, label in (("/", "GET / (dashboard)"), (f"/agent/{HOT}", f"GET /agent/{HOT}")):
            ok = timed(lambda p=path: c.get(p), n)  # type: ignore[misc]
            out.append(row(f"{label}, nothing changed", ok))
            with hive.admin() as a:
                before, after, late = after_change(
                    lambda p=path: c.get(p),  # type: ignore[misc]
                    lambda: a.call("send", to="agent-001", body="x"),
                    clock,
                    n,
                )
            out.append(row(f"{label}, right after a change, before its re-render arrived", before))
            out.append(row(f"{label}, right after a change, after its re-render arrived", after))
            notes.append(
                f"{label}, before: {len(before)} of {n} tries; in the other {late} the "
                "re-render's patch arrived before the GET was sent."
            )
        with hive.admin() as a:
            out.append(
                row("admin `list` (200 agents), for reference", timed(lambda: a.call("list"), n))
            )
    finally:
        keep.close()
    return out, notes


def push_sse(web: RunningWeb, hive: RunningHive, n: int) -> list[float]:
    c = web.client()  # a signed-in session
    sse = SSEReader("127.0.0.1", web.port, f"/api/events?topic=agent:{HOT}", c.cookies)
    sse.event()
    got = []
    try:
        with hive.admin() as a:
            for _ in range(n):
                t = time.perf_counter()
                mid = a.call("send", to=HOT, body="probe")["id"]
                while True:
                    _, data = sse.event(timeout=10)
                    inbox = json.loads(data).get("sections", {}).get("inbox")
                    if inbox and f"msg-{mid}" in inbox["html"]:
                        break
                got.append((time.perf_counter() - t) * 1000)
                time.sleep(random.uniform(0.01, 0.05))
    finally:
        sse.close()
    return got


def push_browser(web: RunningWeb, hive: RunningHive, n: int) -> list[float] | None:
    if not Path(CHROMIUM).exists():
        return None
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="hive-bench-")
    got = []
    try:
        with sync_playwright() as pw:
            ctx = launch_chromium(pw, profile)
            page = ctx.new_page()
            web.sign_in(page)
            page.goto(f"{web.base}/agent/{HOT}")
            page.wait_for_selector("#live[data-state=live]")
            page.evaluate(
                """() => { window.seen = {};
                new MutationObserver((changes) => { const t = Date.now();
                  for (const c of changes) for (const n of c.addedNodes)
                    if (n.id && !(n.id in window.seen)) window.seen[n.id] = t;
                }).observe(document.getElementById('inbox'), {childList: true}); }"""
            )
            with hive.admin() as a:
                for _ in range(n):
                    t = time.time()
                    mid = a.call("send", to=HOT, body="probe")["id"]
                    page.wait_for_selector(f"#msg-{mid}", state="attached")
                    seen = page.evaluate(f"window.seen['msg-{mid}']")
                    got.append(seen - t * 1000)
                    time.sleep(random.uniform(0.01, 0.05))
            ctx.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    return got


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("-n", type=int, default=200, help="samples per measurement")
    args = parser.parse_args()
    began = datetime.now(UTC)
    load_before = loadavg()
    root = Path(tempfile.mkdtemp(prefix="hive-bench-web-"))
    env = hive_env(root)
    fill(Paths.from_env(env))
    hive = RunningHive(env)
    web = None
    try:
        web = RunningWeb(env)
        lines, notes = render(web, hive, args.n)
        lines.append(row("push: `send` → SSE patch with the message", push_sse(web, hive, args.n)))
        browser = push_browser(web, hive, min(args.n, 100))
        if browser is not None:
            lines.append(row("push: `send` → message row in chromium's DOM", browser))
    finally:
        if web is not None:
            web.stop()
        hive.stop()
        shutil.rmtree(env["HIVE_RUNTIME_DIR"], ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)
    table = "\n".join(
        [
            f"Run {began:%Y-%m-%d %H:%M} UTC, {source_rev(ROOT)}; load average before/after: "
            f"{load_before} / {loadavg()} (anything else running shares the same cores).",
            "",
            f"{AGENTS} agents, {APPROVALS:,} approvals ({PENDING} pending), "
            f"{MESSAGES:,} messages, {NOTIFICATIONS} notifications; "
            f"{platform.python_implementation()} {platform.python_version()}, "
            f"{os.cpu_count()} cores",
            "",
            "| what (ms) | n | p50 | p95 | max |",
            "|---|---:|---:|---:|---:|",
            *lines,
            "",
            *notes,
        ]
    )
    publish(table, RESULTS)


if __name__ == "__main__":
    main()
