"""Soak: 50 agents (process backend), the dashboard and a steady load, for N minutes.

Load: messages between random agents (each agent has an `ack` receiver), page fetches
(the dashboard, an agent's page, `/api/model?name=`) on a signed-in session, and a few live
SSE streams that reconnect now and then. Counts are checks: every id a `send` returned is
recorded with its recipient, and every id a receiver got; lost = sent and never received
by its recipient, duplicated = received more than once. A page counts only when it
answered 200 with that page (its topic and the agent's name; for /api/model, JSON naming
the agent), an SSE connection only when it answered 200 `text/event-stream`. After the
load the receivers drain until every sent id arrived (or 60 s), then hive.db must hold
exactly the sent messages, none undelivered. Every few seconds it samples RSS and open fds
of the coordinator and of hive-web; per minute the broker's p99 latency (send → the
receiver has it). It prints the checks, the memory slope (MiB/hour, least squares, first
minute left out as warm-up), fd growth and the p99 series.

    .venv/bin/python -m bench.soak                # 10 minutes
    .venv/bin/python -m bench.soak --minutes 3
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import shutil
import socket
import sqlite3
import tempfile
import threading
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path

from hyperhive.hive.client import BadReply, HiveClient, Refused, Unreachable

from bench.host import loadavg, source_rev
from bench.stats import nearest_rank
from tests.browser.webtest import RunningWeb
from tests.hivetest import REPO, RunningHive, hive_env

DRAIN_SECONDS = 60.0
PAGE_KINDS = ("index", "agent", "model")
CHECKS = {
    "sent": "messages sent (ids returned by `send`)",
    "stored": "messages stored (agents' rows in hive.db)",
    "received": "unique ids received",
    "lost": "lost (sent, never received by its recipient)",
    "duplicated": "duplicated (received more than once)",
    "misrouted": "misrouted (received by another agent, or never sent)",
    "undelivered": "left undelivered in hive.db",
}


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def fds(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


def slope_per_hour(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value), per hour."""
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    sxy = sum((x - mx) * (y - my) for x, y in points)
    return sxy / sxx * 3600 if sxx else 0.0


def p99(values: list[float]) -> float:
    return nearest_rank(values, 99)


def page_path(kind: str, name: str) -> str:
    return {"index": "/", "agent": f"/agent/{name}", "model": f"/api/model?name={name}"}[kind]


def page_ok(kind: str, name: str, status: int, body: bytes) -> bool:
    """The answer a signed-in operator expects: 200 and that very page."""
    if status != 200:
        return False
    if kind == "model":
        try:
            data = json.loads(body)
        except ValueError:
            return False
        return isinstance(data, dict) and data.get("ok") is True and data.get("name") == name
    text = body.decode("utf-8", "replace")
    topic = "index" if kind == "index" else f"agent:{name}"
    mark = f'href="/agent/{name}"' if kind == "index" else f'id="agent" data-agent="{name}"'
    return f'<meta name="hive-topic" content="{topic}">' in text and mark in text


def sse_ok(head: bytes) -> bool:
    """The response head of a live stream: 200 and text/event-stream."""
    lines = head.decode("latin-1").lower().split("\r\n")
    return lines[0].split(" ")[1:2] == ["200"] and any(
        h.startswith("content-type:") and "text/event-stream" in h for h in lines[1:]
    )


def message_counts(
    sent: dict[int, str], received: dict[int, list[str]], db: dict[str, int]
) -> dict[str, int]:
    """The counts of CHECKS from the ids sent (id -> recipient), the ids received (id -> each
    agent that got it) and what hive.db holds (stored, undelivered)."""
    lost = [m for m, to in sent.items() if to not in received.get(m, [])]
    misrouted = [m for m, got in received.items() if set(got) - {sent.get(m)}]
    return {
        "sent": len(sent),
        "stored": db["stored"],
        "received": len(received),
        "lost": len(lost),
        "duplicated": sum(1 for got in received.values() if len(got) > 1),
        "misrouted": len(misrouted),
        "undelivered": db["undelivered"],
    }


class Soak:
    def __init__(self, hive: RunningHive, web: RunningWeb, names: list[str], rate: float):
        self.hive, self.web, self.names, self.rate = hive, web, names, rate
        self.stop_load = threading.Event()  # senders, pages, SSE, sampler
        self.stop_recv = threading.Event()  # receivers, once everything sent arrived
        self.lock = threading.Lock()
        self.began = time.monotonic()
        self.latency: dict[int, list[float]] = {}  # minute -> delivery latencies (ms)
        self.send_ms: dict[int, list[float]] = {}
        self.sent: dict[int, str] = {}  # id -> its recipient
        self.received: dict[int, list[str]] = defaultdict(list)  # id -> who got it, each time
        self.pages: Counter[str] = Counter()  # kind -> answered with the page
        self.sse_streams = 0  # answered 200 text/event-stream
        self.errors: Counter[str] = Counter()  # what went wrong, in a few words
        self.samples: list[dict[str, float]] = []
        self.drain_seconds = 0.0
        self.db: dict[str, int] = {}

    def minute(self) -> int:
        return int((time.monotonic() - self.began) // 60)

    def error(self, what: str) -> None:
        with self.lock:
            self.errors[what] += 1

    # messages --------------------------------------------------------------------------
    def receiver(self, name: str) -> None:
        client: HiveClient | None = None
        while not self.stop_recv.is_set():
            try:
                client = client or self.hive.agent(name)
                msg = client.call("recv", wait_seconds=2, ack=True).get("message")
                if msg is None:
                    continue
                sent = float(json.loads(msg["body"])["t"])
                with self.lock:
                    self.latency.setdefault(self.minute(), []).append((time.time() - sent) * 1000)
                    self.received[int(msg["id"])].append(name)
                client.call("ack", id=msg["id"])
            except (Unreachable, BadReply, OSError, Refused) as e:
                self.error(f"recv/ack: {type(e).__name__}")
                if client is not None:
                    client.close()
                client = None
                time.sleep(0.5)
        if client is not None:
            client.close()

    def sender(self) -> None:
        clients = {n: self.hive.agent(n) for n in self.names}
        n = 0
        start = time.monotonic()
        while not self.stop_load.is_set():
            n += 1
            lag = start + n / self.rate - time.monotonic()
            if lag > 0:
                time.sleep(lag)
            src, dst = random.sample(self.names, 2)
            t0 = time.perf_counter()
            try:
                reply = clients[src].call("send", to=dst, body=json.dumps({"t": time.time()}))
            except (Unreachable, BadReply, OSError, Refused) as e:
                self.error(f"send: {type(e).__name__}")  # stored or not: the db count tells
                clients[src].close()
                clients[src] = self.hive.agent(src)
                continue
            with self.lock:
                self.send_ms.setdefault(self.minute(), []).append((time.perf_counter() - t0) * 1000)
                self.sent[int(reply["id"])] = dst
        for c in clients.values():
            c.close()

    def drain(self) -> None:
        """Let the receivers take what is still queued: until every sent id has arrived."""
        began = time.monotonic()
        while time.monotonic() - began < DRAIN_SECONDS:
            with self.lock:
                if self.sent.keys() <= self.received.keys():
                    break
            time.sleep(0.2)
        self.drain_seconds = time.monotonic() - began

    def check_db(self) -> None:
        """What hive.db holds: the agents' messages, and how many are still undelivered."""
        conn = sqlite3.connect(f"file:{self.hive.paths.db}?mode=ro", uri=True, timeout=10)
        try:
            stored, undelivered = conn.execute(
                "SELECT count(*), count(*) - count(delivered_at) FROM messages"
                " WHERE sender != 'system'"
            ).fetchone()
        finally:
            conn.close()
        self.db = {"stored": int(stored), "undelivered": int(undelivered)}

    # the dashboard -----------------------------------------------------------------------
    def session_cookie(self) -> str:
        """A dashboard session of its own, signed in as the operator signs in (checked)."""
        c = self.web.client()
        reply = c.get("/api/session")
        if reply.status != 200 or not reply.json().get("session"):
            raise RuntimeError(f"the soak's dashboard session is not signed in: {reply.status}")
        return "; ".join(f"{k}={v}" for k, v in c.cookies.items())

    def page_fetcher(self) -> None:
        cookie = self.session_cookie()
        while not self.stop_load.is_set():
            name, kind = random.choice(self.names), random.choice(PAGE_KINDS)
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.web.port, timeout=10)
                conn.request("GET", page_path(kind, name), headers={"Cookie": cookie})
                resp = conn.getresponse()
                body = resp.read()
                conn.close()
                if page_ok(kind, name, resp.status, body):
                    with self.lock:
                        self.pages[kind] += 1
                else:
                    self.error(f"page {kind}: status {resp.status}, not the page")
            except OSError as e:
                self.error(f"page {kind}: {type(e).__name__}")
            time.sleep(0.2)

    def sse(self) -> None:
        cookie = self.session_cookie()
        while not self.stop_load.is_set():
            try:
                with socket.create_connection(("127.0.0.1", self.web.port), timeout=5) as s:
                    s.sendall(
                        f"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1:{self.web.port}\r\n"
                        f"Cookie: {cookie}\r\nAccept: text/event-stream\r\n\r\n".encode()
                    )
                    self.follow(s)
            except OSError as e:
                self.error(f"sse: {type(e).__name__}")
                time.sleep(1)

    def follow(self, s: socket.socket) -> None:
        """Read one live stream for 20 s (then reconnect); its head must be a live stream."""
        until = time.monotonic() + 20
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = s.recv(65536)
            if not chunk:
                self.error("sse: closed before its head")
                return
            head += chunk
        if not sse_ok(head.partition(b"\r\n\r\n")[0]):
            self.error(f"sse: {head.split(b' ', 2)[1].decode('latin-1')}, not a live stream")
            time.sleep(1)
            return
        with self.lock:
            self.sse_streams += 1
        while time.monotonic() < until and not self.stop_load.is_set():
            try:
                if not s.recv(65536):
                    self.error("sse: closed by the server")
                    return
            except TimeoutError:
                pass

    # memory ------------------------------------------------------------------------------
    def sampler(self, every: float) -> None:
        while not self.stop_load.is_set():
            t = time.monotonic() - self.began
            self.samples.append(
                {
                    "t": t,
                    "coord_rss": rss_mib(self.hive.proc.pid),
                    "coord_fds": fds(self.hive.proc.pid),
                    "web_rss": rss_mib(self.web.proc.pid),
                    "web_fds": fds(self.web.proc.pid),
                }
            )
            self.stop_load.wait(every)

    def run(self, minutes: float, sse_clients: int, every: float) -> None:
        receivers = [threading.Thread(target=self.receiver, args=(n,)) for n in self.names]
        load = [threading.Thread(target=self.sender), threading.Thread(target=self.page_fetcher)]
        load += [threading.Thread(target=self.sse) for _ in range(sse_clients)]
        load.append(threading.Thread(target=self.sampler, args=(every,)))
        self.began = time.monotonic()
        for th in receivers + load:
            th.start()
        self.stop_load.wait(minutes * 60)
        self.stop_load.set()
        for th in load:
            th.join(30)
        self.drain()
        self.stop_recv.set()
        for th in receivers:
            th.join(30)
        self.check_db()

    # the report --------------------------------------------------------------------------
    def message_checks(self) -> dict[str, int]:
        return message_counts(self.sent, self.received, self.db)

    def checks(self) -> list[str]:
        rows = ["| check | count |", "|---|---:|"]
        rows += [f"| {CHECKS[k]} | {v} |" for k, v in self.message_checks().items()]
        answered = " / ".join(str(self.pages[k]) for k in PAGE_KINDS)
        rows += [
            f"| pages answered 200 with the page (index / agent / `/api/model`) | {answered} |",
            f"| SSE connections answered 200 `text/event-stream` | {self.sse_streams} |",
            f"| errors (any request not answered as expected) | {sum(self.errors.values())} |",
        ]
        rows += [f"| — {what} | {n} |" for what, n in sorted(self.errors.items())]
        return rows

    def memory(self) -> list[str]:
        warm = [s for s in self.samples if s["t"] >= 60] or self.samples
        first, last = warm[0], self.samples[-1]
        rows = [
            "| process | RSS start (MiB) | RSS end (MiB) | slope (MiB/hour) "
            "| slope, second half | fds start | fds end | fds max |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for key, label in (("coord", "hive-coordinator"), ("web", "hive-web")):
            slope = slope_per_hour([(s["t"], s[f"{key}_rss"]) for s in warm])
            half = [s for s in self.samples if s["t"] >= last["t"] / 2]
            late = slope_per_hour([(s["t"], s[f"{key}_rss"]) for s in half])
            rows.append(
                f"| {label} | {first[f'{key}_rss']:.1f} | {last[f'{key}_rss']:.1f} | {slope:+.1f} "
                f"| {late:+.1f} "
                f"| {first[f'{key}_fds']:.0f} | {last[f'{key}_fds']:.0f} "
                f"| {max(s[f'{key}_fds'] for s in warm):.0f} |"
            )
        return rows

    def minutes(self) -> list[str]:
        rows = [
            "| minute | messages | p99 delivery (ms) | p99 send reply (ms) |",
            "|---:|---:|---:|---:|",
        ]
        for m in sorted(self.latency):
            if len(self.latency[m]) < self.rate * 30:
                continue  # the few messages of the last, partial minute
            rows.append(
                f"| {m + 1} | {len(self.latency[m])} | {p99(self.latency[m]):.1f} "
                f"| {p99(self.send_ms.get(m, [])):.1f} |"
            )
        return rows

    def report(self) -> str:
        rows = [*self.checks(), "", *self.memory(), "", *self.minutes(), ""]
        rows.append(
            f"{len(self.names)} agents; drained in {self.drain_seconds:.1f} s after the load; "
            f"{len(self.samples)} samples"
        )
        return "\n".join(rows)

    def failed(self) -> bool:
        """A message lost, duplicated, misrouted, stored twice or left undelivered."""
        c = self.message_checks()
        bad = c["lost"] or c["duplicated"] or c["misrouted"] or c["undelivered"]
        return bool(bad) or c["stored"] != c["sent"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--agents", type=int, default=50)
    ap.add_argument("--rate", type=float, default=50, help="messages per second")
    ap.add_argument("--sse", type=int, default=4, help="live SSE clients")
    ap.add_argument("--every", type=float, default=5, help="seconds between samples")
    ap.add_argument("--samples", type=Path, help="write the RSS/fd samples here (JSON)")
    args = ap.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="soak-"))
    env = hive_env(root, HIVE_AGENT_COMMAND="sleep infinity")
    hive = RunningHive(env)
    web: RunningWeb | None = None
    try:
        names = [f"a{i:02d}" for i in range(args.agents)]
        with hive.admin(timeout=120) as admin:
            for name in names:
                admin.call("spawn", name=name)
        web = RunningWeb(env)
        soak = Soak(hive, web, names, args.rate)
        when, load, rev = f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC", loadavg(), source_rev(REPO)
        soak.run(args.minutes, args.sse, args.every)
        print(
            f".venv/bin/python -m bench.soak --minutes {args.minutes:g} — run {when}, {rev}; "
            f"load average (1, 5, 15 min) before {load}, after {loadavg()}"
        )
        print(soak.report())
        if args.samples is not None:
            args.samples.write_text(json.dumps(soak.samples))
        return 1 if soak.failed() else 0
    finally:
        if web is not None:
            web.stop()
        hive.stop()
        shutil.rmtree(env["HIVE_RUNTIME_DIR"], ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
