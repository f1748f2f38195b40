"""Gateway benchmark: what the model gateway adds to a streamed answer, against the harness's
client talking to the Messages API stand-in directly.

`.venv/bin/python -m bench.gateway` runs the stand-in (`tests/fakeapi`) in a process of its
own, a real coordinator (process backend) that runs the real gateway in front of it, and
in this process the harness's own `anthropic` client, two ways: over the gateway's unix
socket as the harness does (no key), and over TCP straight to the stand-in with the key.
Requests alternate between the two. For each it measures, from the call:

* time to first token: until the first `content_block_delta` event is read;
* the full streamed answer: until the stream's end (`message_stop`), the usage row
  written on the way for the gateway.

Two answers: a short one (12 text deltas) and a long one (about 1,700 deltas, 20 KB of
text). The Markdown table goes to stdout and to bench/results/gateway.md (git-ignored).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import anthropic
import httpx2
from hyperhive.agent.api import CONNECT_TIMEOUT, READ_TIMEOUT, Api

from bench.host import loadavg, source_rev
from bench.stats import nearest_rank, publish
from tests.fakeapi import API_KEY, FakeAnthropic, Reply, Request, Text
from tests.hivetest import RunningHive, hive_env, spawn, wait_serving

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "gateway.md"
SHORT = "x" * 140  # 12 deltas of 12 characters
LONG = "lorem ipsum " * 1700  # 20 KB: 1,700 deltas


def answer(req: Request) -> Reply:
    """The stand-in's answer: as long as the request's first word says."""
    return Reply([Text(LONG if req.text().startswith("long") else SHORT)])


def serve_fake() -> None:
    """Run the stand-in in this process until stdin closes; print its URL first."""
    with FakeAnthropic(default=answer) as fake:
        print(fake.url, flush=True)
        sys.stdin.read()


def direct_client(url: str) -> anthropic.Anthropic:
    """The harness's client, as it was before the gateway: TCP, the key in hand."""
    timeout = httpx2.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT)
    return anthropic.Anthropic(
        api_key=API_KEY,
        base_url=url,
        max_retries=0,
        timeout=timeout,
        http_client=httpx2.Client(trust_env=False, timeout=timeout),
    )


def one(client: anthropic.Anthropic, kind: str) -> tuple[float, float]:
    """(time to first text delta, time to the end) of one streamed request, in ms."""
    t0 = time.perf_counter()
    first = None
    with client.messages.stream(
        model="claude-haiku-4-5",
        max_tokens=8192,
        messages=[{"role": "user", "content": f"{kind} answer, please"}],
    ) as stream:
        for event in stream:
            if first is None and event.type == "content_block_delta":
                first = time.perf_counter()
    end = time.perf_counter()
    assert first is not None
    return (first - t0) * 1000, (end - t0) * 1000


def row(what: str, via: list[float], direct: list[float]) -> str:
    def p(values: list[float], q: float) -> float:
        return nearest_rank(values, q)

    return (
        f"| {what} | {len(via)} | {p(direct, 50):.2f} | {p(via, 50):.2f} | "
        f"{p(via, 50) - p(direct, 50):+.2f} | {p(via, 50) / p(direct, 50):.2f}x | "
        f"{p(direct, 95):.2f} | {p(via, 95):.2f} | {p(via, 95) / p(direct, 95):.2f}x |"
    )


def measure(
    clients: dict[str, anthropic.Anthropic], kind: str, n: int
) -> dict[str, tuple[list[float], list[float]]]:
    got: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in clients}
    for c in clients.values():  # warm both: connections, the SDK's first-call work
        for _ in range(3):
            one(c, kind)
    for i in range(n):  # alternate, and alternate who goes first
        for name in list(clients) if i % 2 == 0 else list(reversed(clients)):
            ttft, total = one(clients[name], kind)
            got[name][0].append(ttft)
            got[name][1].append(total)
    return got


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("-n", type=int, default=200, help="requests per way and answer")
    parser.add_argument("--serve-fake", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_fake:
        serve_fake()
        return
    began = datetime.now(UTC)
    load_before = loadavg()
    fake = subprocess.Popen(
        [sys.executable, "-m", "bench.gateway", "--serve-fake"],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    root = Path(tempfile.mkdtemp(prefix="hive-bench-gateway-"))
    env = None
    hive = None
    try:
        assert fake.stdout is not None
        url = fake.stdout.readline().strip()
        env = hive_env(root, ANTHROPIC_BASE_URL=url, ANTHROPIC_API_KEY=API_KEY)
        hive = RunningHive(env)
        spawn(hive, "alice")
        wait_serving(hive.paths, "alice")
        via = Api(hive.paths.gateway_socket("alice"), retry_base=1, retry_cap=1, max_retries=0)
        clients = {
            "gateway": via.client,
            "direct": direct_client(url),
        }
        lines = []
        for kind, label in (("short", "12 deltas"), ("long", "1,700 deltas, 20 KB")):
            got = measure(clients, kind, args.n)
            lines.append(row(f"time to first token, {label}", got["gateway"][0], got["direct"][0]))
            lines.append(row(f"full streamed answer, {label}", got["gateway"][1], got["direct"][1]))
    finally:
        if hive is not None:
            hive.stop()
        if env is not None:
            shutil.rmtree(env["HIVE_RUNTIME_DIR"], ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)
        if fake.stdin is not None:
            fake.stdin.close()
        fake.wait(30)
    table = "\n".join(
        [
            f"Run {began:%Y-%m-%d %H:%M} UTC, {source_rev(ROOT)}; load average before/after: "
            f"{load_before} / {loadavg()} (anything else running shares the same cores).",
            f"{platform.python_implementation()} {platform.python_version()}, "
            f"{os.cpu_count()} cores; the stand-in, the gateway and the client are three "
            "processes on this host.",
            "",
            "| what (ms) | n | direct p50 | gateway p50 | added p50 | ratio p50 | "
            "direct p95 | gateway p95 | ratio p95 |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
            *lines,
        ]
    )
    publish(table, RESULTS)


if __name__ == "__main__":
    main()
