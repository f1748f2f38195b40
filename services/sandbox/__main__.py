"""`make demo` on a host whose PID 1 is not systemd: boot a sandbox systemd host, install the
hive in it with `hivectl install`, print the dashboard URL, and power it off on Ctrl-C.

State and sockets live under .demo/ in the checkout, so they survive a restart of the demo
and hivectl works from outside the sandbox.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from pathlib import Path

from ..hive.statelock import DirLock, LockError
from .host import SandboxError, SandboxHost

REPO = Path(__file__).resolve().parents[2]


def _link(login_json: str) -> str:
    """The sign-in link from `hivectl --json login`, or how to get one."""
    try:
        return str(json.loads(login_json)["url"])
    except (ValueError, KeyError, TypeError):
        return "no link yet: run `hivectl login` (below) once the coordinator is up"


def main(argv: list[str] | None = None) -> int:
    demo = REPO / ".demo"
    lock = DirLock(demo, "a `make demo`", "use that one, or stop it with Ctrl-C where it runs")
    try:
        lock.acquire()
    except LockError as e:
        print(f"demo: {e}", file=sys.stderr)
        return 1
    try:
        return _run(demo)
    finally:
        lock.release()


def _run(demo: Path) -> int:
    state, run = demo / "state", demo / "run"
    for d in (state, run):
        d.mkdir(parents=True, exist_ok=True)
    listen = os.environ.get("HIVE_WEB_LISTEN", "127.0.0.1:7800")
    host = SandboxHost(
        "hyperhive-demo",
        binds=[REPO, f"{state}:/var/lib/hyperhive", f"{run}:/run/hyperhive"],
        binds_ro=[p for p in ("/var/lib/apt/lists", "/etc/apt") if Path(p).exists()],
        log_path=demo / "sandbox.log",
        journal=demo / "journal",  # kept across demos; `hivectl logs` reads it from outside
    )
    print("==> booting a sandbox systemd host (systemd-nspawn)", flush=True)
    try:
        host.boot()
        print("==> installing hyperhive in it: hivectl install", flush=True)
        settings = [f"--set=HIVE_WEB_LISTEN={listen}"]
        out = host.run(
            str(REPO / ".venv/bin/hivectl"), "install", *settings, check=False, timeout=600
        )
        sys.stdout.write(out.stdout)
        if out.returncode != 0:
            raise SandboxError(f"hivectl install failed: {out.stderr.strip()}")
        key = os.environ.get("ANTHROPIC_API_KEY")
        if key:
            host.run(
                "/bin/sh",
                "-c",
                "umask 077; cat > /etc/hyperhive/credentials.env",
                input=f"ANTHROPIC_API_KEY={key}\n",
            )
            # the gateway alone holds it: it reads the file when it starts
            host.run("systemctl", "restart", "hive-gateway.service", check=False)
        status = host.run("systemctl", "is-active", "hyperhive.target", check=False).stdout.strip()
        login = host.run(
            str(REPO / ".venv/bin/hivectl"), "--json", "login", check=False, timeout=60
        ).stdout
    except (SandboxError, OSError) as e:
        print(f"demo: {e}", file=sys.stderr)
        host.poweroff()
        return 1
    print(
        f"""
==> the hive is up ({status})
    dashboard:  http://{listen}/
    sign in:    {_link(login)}
                (works once, within 2 minutes; `hivectl login` prints another)
    hivectl:    export HIVE_RUNTIME_DIR={run} HIVE_JOURNAL_DIR={demo / "journal"}
                .venv/bin/hivectl list        (and `hivectl logs NAME` reads the demo's journal)
    inside:     nsenter -t {host.init_pid} -a journalctl -f -u 'hive-*'
    tour:       nsenter -t {host.init_pid} -a {REPO / ".venv/bin/hivectl"} tour
                (the approval and question flows, with no API key: it plays hm1nd)
    state:      {state} (kept between runs; `make clean` removes it)
    stop:       Ctrl-C here (powers the sandbox off)
""",
        flush=True,
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.is_set() and host.proc is not None and host.proc.poll() is None:
        stop.wait(3600)
    print("==> powering the sandbox off", flush=True)
    host.poweroff()
    return 0


if __name__ == "__main__":
    sys.exit(main())
