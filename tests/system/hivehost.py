"""A booted sandbox systemd host with hyperhive installed by `hivectl install`, for system tests."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hyperhive.sandbox.host import SandboxHost

from tests.hivetest import REPO, free_port

VENV_BIN = REPO / ".venv" / "bin"
PY = str(VENV_BIN / "python")
PLATFORM_ROOT = "/var/lib/hive-platform"


class HiveHost:
    """The sandbox plus the hive's own commands, run inside it."""

    def __init__(self, sandbox: SandboxHost) -> None:
        self.sandbox = sandbox

    def sh(self, script: str, *, check: bool = True, timeout: float = 120) -> str:
        return self.sandbox.run("/bin/sh", "-c", script, check=check, timeout=timeout).stdout

    def hivectl(self, *args: str, check: bool = True, timeout: float = 180) -> Any:
        out = self.sandbox.run(
            str(VENV_BIN / "hivectl"), "--json", *args, check=False, timeout=timeout
        )
        if check and out.returncode != 0:
            raise AssertionError(f"hivectl {' '.join(args)} exited {out.returncode}: {out.stderr}")
        return json.loads(out.stdout) if out.stdout.strip() else {}

    def call(self, socket: str, cmd: str, **fields: Any) -> dict[str, Any]:
        """One request on a hive socket inside the sandbox, through the real client."""
        code = (
            "import json, sys\n"
            "from hyperhive.hive.client import HiveClient\n"
            "with HiveClient(sys.argv[1]) as c:\n"
            "    print(json.dumps(c.request(json.loads(sys.argv[2]))))\n"
        )
        req = json.dumps({"cmd": cmd, **fields})
        out = self.sandbox.run(
            PY, "-c", code, socket, req, timeout=180, env={"PYTHONPATH": str(REPO)}
        )
        return dict(json.loads(out.stdout))

    def manager_events(self) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        while True:
            reply = self.call("/run/hyperhive/manager/hive.sock", "recv", wait_seconds=0)
            if reply.get("message") is None:
                return events
            events.append(json.loads(reply["message"]["body"]))

    def wait_event(self, event: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            reply = self.call(
                "/run/hyperhive/manager/hive.sock", "recv", wait_seconds=min(left, 60)
            )
            msg = reply.get("message")
            if msg is None:
                continue
            body = dict(json.loads(msg["body"]))
            if body["event"] == event:
                return body
        raise AssertionError(f"no {event} event in {timeout}s")

    def commit_config(self, agent: str, text: str) -> str:
        """Write and commit agent.toml in the agent's proposed repo as hm1nd does: inside its
        container, as its root (the repo's owner; git refuses a repo owned by another user,
        host root included); the new sha."""
        script = (
            f"cd /agents/{agent}/config && cat > agent.toml && git add agent.toml && "
            "git -c user.name=hm1nd -c user.email=hm1nd@hive commit -qm 'config change' && "
            "git rev-parse HEAD"
        )
        manager = self.payload_pid("hm1nd")
        out = self.sandbox.run(
            *self.in_container(manager).split(), "env", "HOME=/state", "PATH=/usr/bin:/bin",
            "/bin/sh", "-c", script, input=text,
        )  # fmt: skip
        return out.stdout.split()[-1]

    def in_container(self, pid: int) -> str:
        """A command prefix that runs inside the container of `pid` as its root: every
        namespace, its user namespace included (so files it makes belong to its uid range)."""
        return f"nsenter -t {pid} -U -m -u -i -p -r -w"

    def journal_cursor(self) -> str:
        """The sandbox journal's cursor now: read later with `after=` for what came since."""
        out = self.sh("journalctl -n 0 --show-cursor --no-pager")
        return out.rsplit("-- cursor: ", 1)[1].strip()

    def wait_journal(self, text: str, *matches: str, after: str, timeout: float = 60) -> str:
        """The first journal line after cursor `after` (and `matches`) containing `text`.
        journalctl follows the journal (it is woken by inotify: nothing polls); `timeout`
        only ends a wait that would otherwise never end."""
        script = 'echo "$$"; exec timeout "$0" journalctl "$@"'
        argv = self.sandbox.command(
            "/bin/sh", "-c", script, f"{timeout:g}",
            f"--after-cursor={after}", "--follow", "--output=cat", "--no-pager", *matches,
        )  # fmt: skip
        with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) as follower:
            assert follower.stdout is not None
            pid = follower.stdout.readline().strip()  # journalctl's, in the sandbox
            try:
                for line in follower.stdout:
                    if text in line:
                        return line.rstrip("\n")
            finally:
                self.sandbox.run("kill", pid, check=False)  # by its pid: the one we started
        raise AssertionError(f"no journal line with {text!r} in {timeout}s")

    def unit_prop(self, unit: str, prop: str) -> str:
        return self.sh(f"systemctl show -P {prop} {unit}").strip()

    def machines(self) -> list[str]:
        out = self.sh("machinectl list --no-legend --no-pager")
        return [line.split()[0] for line in out.splitlines() if line.strip()]

    def payload_pid(self, machine: str) -> int:
        """The agent's payload: the child of the container's stub init (--as-pid2)."""
        leader = self.sh(f"machinectl show --property=Leader --value {machine}").strip()
        kids = self.sh(f"cat /proc/{leader}/task/*/children").split()
        return int(kids[0])

    def environ(self, pid: int) -> dict[str, str]:
        raw = self.sh(f"tr '\\0' '\\n' < /proc/{pid}/environ")
        return dict(line.split("=", 1) for line in raw.splitlines() if "=" in line)


@contextmanager
def booted_hive(
    log_dir: Path, *, settings: dict[str, str], private_network: bool = False
) -> Iterator[HiveHost]:
    """A booted sandbox with the hive installed by `hivectl install --set=K=V` for each of
    `settings` (the dashboard on a free loopback port unless HIVE_WEB_LISTEN is given).
    `private_network`: the sandbox gets a network namespace of its own (SandboxHost), for
    tests that make veths, firewall rules or servers: nothing of them reaches this machine."""
    sandbox = SandboxHost(
        f"hive-sys-{os.getpid()}-{time.monotonic_ns() % 100000}",
        binds=[REPO],
        binds_ro=[p for p in (Path("/var/lib/apt/lists"), Path("/etc/apt")) if p.exists()],
        log_path=log_dir / "sandbox.log",
        private_network=private_network,
    )
    sandbox.boot()
    try:
        host = HiveHost(sandbox)
        host.sh(f"mkdir -p {PLATFORM_ROOT} && echo v1 > {PLATFORM_ROOT}/platform.py")
        # the sandbox shares the machine's network: its dashboard gets a free port, never
        # the demo's 7800
        base = {"HIVE_PLATFORM_ROOT": PLATFORM_ROOT, "HIVE_WEB_LISTEN": f"127.0.0.1:{free_port()}"}
        args = [f"--set={k}={v}" for k, v in {**base, **settings}.items()]
        out = sandbox.run(str(VENV_BIN / "hivectl"), "install", *args, check=False, timeout=300)
        if out.returncode != 0:
            raise AssertionError(f"hivectl install failed: {out.stdout}\n{out.stderr}")
        yield host
    finally:
        sandbox.poweroff()
