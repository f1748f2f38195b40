"""Harness memory benchmark: what one real harness holds while it waits for messages.

`.venv/bin/python -m bench.harness_memory` starts a real coordinator (process backend, a
fresh state dir; it runs the model gateway) in front of the local Messages API stand-in
(tests/fakeapi), spawns agents and
runs the real harness for each (tests/fakeapi/harness.py: the environment a backend gives
it). Each harness is read from /proc/<pid>/smaps_rollup (RSS, PSS, anonymous PSS) twice:
waiting for messages since it started (its "started; waiting for messages" turn state
reported), and waiting again after one short turn (an operator message answered by a plain
`end_turn`), and, with `--shed-after S` (HIVE_AGENT_SHED_AFTER), once more after each
has waited S seconds since that turn and started again in place. Several harnesses run at
once so PSS shares what they share (the interpreter's pages).

`--source DIR` runs the harness from another checkout (to compare commits). The Markdown
table goes to stdout and to bench/results/harness_memory.md (git-ignored).
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import re
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.host import source_rev
from bench.source import environ
from bench.stats import nearest_rank, publish
from tests.fakeapi.harness import HarnessProcess, operator_says, turn_state
from tests.fakeapi.server import FakeAnthropic
from tests.hivetest import RunningHive, hive_env, running_hive, spawn

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "harness_memory.md"
FIELDS = ("Rss", "Pss", "Pss_Anon")


def smaps(pid: int) -> dict[str, int]:
    """RSS, PSS and anonymous PSS of `pid` in KiB (/proc/<pid>/smaps_rollup)."""
    text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    return {k: int(v) for k, v in re.findall(r"^(\w+):\s+(\d+) kB", text, re.M) if k in FIELDS}


def wait_idle(hive: RunningHive, name: str, timeout: float = 60) -> None:
    """Until `name`'s harness reports its turn state idle (waiting for messages)."""
    deadline = time.monotonic() + timeout
    while turn_state(hive, name).get("state") != "idle":
        assert time.monotonic() < deadline, f"{name} never reported idle"
        time.sleep(0.1)


def measure(count: int, source: Path | None, shed_after: float) -> dict[str, list[dict[str, int]]]:
    root = Path(tempfile.mkdtemp(prefix="hive-bench-harness-"))
    api = FakeAnthropic()
    # the coordinator runs the model gateway in front of the stand-in, holding its key
    env = environ(hive_env(root, ANTHROPIC_BASE_URL=api.url, ANTHROPIC_API_KEY=api.api_key), source)
    out: dict[str, list[dict[str, int]]] = {"waiting since start": [], "after one turn": []}
    try:
        with api, running_hive(env) as hive:
            names = [f"agent-{i:02d}" for i in range(count)]
            spawn(hive, *names)
            extra = {"HIVE_AGENT_SHED_AFTER": f"{shed_after:g}"}
            if source is not None:
                extra["PYTHONPATH"] = env["PYTHONPATH"]
            harnesses = [HarnessProcess(hive, n, env=extra) for n in names]
            with contextlib.ExitStack() as stack:
                for h in harnesses:
                    stack.enter_context(h)
                for h in harnesses:
                    h.wait_log("harness started")
                    wait_idle(hive, h.name)
                time.sleep(2)  # every one of them inside its recv
                out["waiting since start"] = [smaps(h.proc.pid) for h in harnesses if h.proc]
                for h in harnesses:
                    operator_says(hive, h.name, "hello")
                for h in harnesses:
                    h.wait_log("turn ended")
                    wait_idle(hive, h.name)
                time.sleep(0.5)
                out["after one turn"] = [smaps(h.proc.pid) for h in harnesses if h.proc]
                if shed_after:
                    for h in harnesses:
                        h.wait_log("harness started again in place", timeout=shed_after + 60)
                    time.sleep(1)
                    out[f"after one turn and {shed_after:g} s waiting (started again in place)"] = [
                        smaps(h.proc.pid) for h in harnesses if h.proc
                    ]
    finally:
        shutil.rmtree(env["HIVE_RUNTIME_DIR"], ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=5, help="harnesses running at once")
    parser.add_argument("--source", type=Path, help="run the harness from this checkout")
    parser.add_argument(
        "--shed-after", type=float, default=10.0, help="HIVE_AGENT_SHED_AFTER (0: never)"
    )
    args = parser.parse_args()
    began = datetime.now(UTC)
    data = measure(args.count, args.source, args.shed_after)
    lines = [
        f"Run {began:%Y-%m-%d %H:%M} UTC, harness {source_rev(args.source or ROOT)}; "
        f"{args.count} harnesses at once; {platform.python_implementation()} "
        f"{platform.python_version()}.",
        "",
        "| harness waiting for messages | RSS p50 | PSS p50 | anonymous PSS p50 | PSS max |",
        "|---|---:|---:|---:|---:|",
    ]
    for what, rows in data.items():
        col = {f: [r[f] / 1024 for r in rows] for f in FIELDS}
        lines.append(
            f"| {what} | {nearest_rank(col['Rss'], 50):.1f} MiB "
            f"| {nearest_rank(col['Pss'], 50):.1f} MiB | {nearest_rank(col['Pss_Anon'], 50):.1f} "
            f"MiB | {max(col['Pss']):.1f} MiB |"
        )
    text = "\n".join(lines)
    publish(text, RESULTS)


if __name__ == "__main__":
    main()
