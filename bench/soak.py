"""Soak: 50 agents (process backend), the dashboard and a steady load, for N minutes.

Load: messages between random agents (each agent has an `ack` receiver), page fetches
(index and agent pages) and a few live SSE streams that reconnect now and then. Every few
seconds it samples the RSS and open fds of the coordinator and of hive-web; per minute it
records the broker's p99 latency (send → the receiver has it). It prints the memory slope
(MiB/hour, least squares, first minute left out as warm-up), fd growth and the p99 series.

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
import tempfile
import threading
import time
from pathlib import Path

from bench.stats import nearest_rank
from services.hive.client import HiveClient, Unreachable
from tests.browser.webtest import RunningWeb
from tests.hivetest import RunningHive, hive_env


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


class Soak:
    def __init__(self, hive: RunningHive, web: RunningWeb, names: list[str], rate: float):
        self.hive, self.web, self.names, self.rate = hive, web, names, rate
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.began = time.monotonic()
        self.latency: dict[int, list[float]] = {}  # minute -> delivery latencies (ms)
        self.send_ms: dict[int, list[float]] = {}
        self.counts = {"sent": 0, "received": 0, "pages": 0, "page_errors": 0, "sse": 0}
        self.samples: list[dict[str, float]] = []

    def minute(self) -> int:
        return int((time.monotonic() - self.began) // 60)

    def receiver(self, name: str) -> None:
        client: HiveClient | None = None
        while not self.stop.is_set():
            try:
                client = client or self.hive.agent(name)
                reply = client.call("recv", wait_seconds=2, ack=True)
                msg = reply.get("message")
                if msg is None:
                    continue
                sent = float(json.loads(msg["body"])["t"])
                with self.lock:
                    self.latency.setdefault(self.minute(), []).append((time.time() - sent) * 1000)
                    self.counts["received"] += 1
                client.call("ack", id=msg["id"])
            except (Unreachable, OSError):
                client = None
                time.sleep(0.5)
        if client is not None:
            client.close()

    def sender(self) -> None:
        clients = {n: self.hive.agent(n) for n in self.names}
        n = 0
        start = time.monotonic()
        while not self.stop.is_set():
            n += 1
            lag = start + n / self.rate - time.monotonic()
            if lag > 0:
                time.sleep(lag)
            src, dst = random.sample(self.names, 2)
            t0 = time.perf_counter()
            clients[src].call("send", to=dst, body=json.dumps({"t": time.time(), "n": n}))
            with self.lock:
                self.send_ms.setdefault(self.minute(), []).append((time.perf_counter() - t0) * 1000)
                self.counts["sent"] += 1
        for c in clients.values():
            c.close()

    def pages(self) -> None:
        cookie = self.session_cookie()
        while not self.stop.is_set():
            name = random.choice(self.names)
            path = random.choice(["/", f"/agent/{name}", f"/api/model?name={name}"])
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.web.port, timeout=10)
                conn.request("GET", path, headers={"Cookie": cookie})
                resp = conn.getresponse()
                resp.read()
                conn.close()
                with self.lock:  # only the answer a signed-in operator expects counts
                    self.counts["pages" if resp.status == 200 else "page_errors"] += 1
            except OSError:
                with self.lock:
                    self.counts["page_errors"] += 1
            time.sleep(0.2)

    def session_cookie(self) -> str:
        """A dashboard session of its own, as the operator signs in."""
        c = self.web.client()
        return "; ".join(f"{k}={v}" for k, v in c.cookies.items())

    def sse(self) -> None:
        cookie = self.session_cookie()
        while not self.stop.is_set():
            try:
                with socket.create_connection(("127.0.0.1", self.web.port), timeout=5) as s:
                    s.sendall(
                        f"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1:{self.web.port}\r\n"
                        f"Cookie: {cookie}\r\nAccept: text/event-stream\r\n\r\n".encode()
                    )
                    until = time.monotonic() + 20  # reconnect every 20 s
                    with self.lock:
                        self.counts["sse"] += 1
                    while time.monotonic() < until and not self.stop.is_set():
                        try:
                            if not s.recv(65536):
                                break
                        except TimeoutError:
                            pass
            except OSError:
                time.sleep(1)

    def sampler(self, every: float) -> None:
        while not self.stop.is_set():
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
            self.stop.wait(every)

    def run(self, minutes: float, sse_clients: int, every: float) -> None:
        threads = [threading.Thread(target=self.receiver, args=(n,)) for n in self.names]
        threads += [threading.Thread(target=self.sender), threading.Thread(target=self.pages)]
        threads += [threading.Thread(target=self.sse) for _ in range(sse_clients)]
        threads.append(threading.Thread(target=self.sampler, args=(every,)))
        self.began = time.monotonic()
        for th in threads:
            th.start()
        self.stop.wait(minutes * 60)
        self.stop.set()
        for th in threads:
            th.join(30)

    def report(self) -> str:
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
        rows += [
            "",
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
        c = self.counts
        rows += [
            "",
            f"{len(self.names)} agents; {c['sent']} messages sent, {c['received']} "
            f"received; {c['pages']} pages fetched ({c['page_errors']} errors); "
            f"{c['sse']} SSE connections; {len(self.samples)} samples",
        ]
        return "\n".join(rows)


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
        soak.run(args.minutes, args.sse, args.every)
        print(f".venv/bin/python -m bench.soak --minutes {args.minutes:g}")
        print(soak.report())
        if args.samples is not None:
            args.samples.write_text(json.dumps(soak.samples))
    finally:
        if web is not None:
            web.stop()
        hive.stop()
        shutil.rmtree(env["HIVE_RUNTIME_DIR"], ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
