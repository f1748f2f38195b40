"""Boot, use and power off a systemd host inside `systemd-nspawn --volatile=yes -D /`.

The container's root is a tmpfs over the host's read-only /usr; the directories given as
binds are visible at the same paths. By default it shares the host's network, so a dashboard
on 127.0.0.1 inside is reachable outside; with `private_network` it has a network namespace
of its own (only loopback), so veths, nftables rules and servers made inside stay there and
go with it. The owner of a `SandboxHost` powers it off.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

BOOT_TIMEOUT = 60.0


class SandboxError(RuntimeError):
    pass


def _children(pid: int) -> list[int]:
    try:
        tasks = Path(f"/proc/{pid}/task").iterdir()
        kids: list[int] = []
        for task in tasks:
            text = (task / "children").read_text().split()
            kids.extend(int(k) for k in text)
        return kids
    except OSError:
        return []


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


class SandboxHost:
    def __init__(
        self,
        name: str,
        *,
        binds: Sequence[Path | str] = (),
        binds_ro: Sequence[Path | str] = (),
        log_path: Path,
        journal: Path | None = None,
        private_network: bool = False,
    ) -> None:
        """`journal`: a directory that keeps the sandbox's journal across boots (bound at
        /var/log/journal, under a machine id kept beside it); by default it is lost.
        `private_network`: boot it in a network namespace of its own, linked to nothing."""
        self.name = name
        self.binds = [str(b) for b in binds]  # "path" or "host-path:container-path"
        self.binds_ro = [str(b) for b in binds_ro]
        self.log_path = log_path
        self.journal = journal
        self.private_network = private_network
        self.proc: subprocess.Popen[bytes] | None = None
        self.init_pid: int | None = None

    def boot(self) -> None:
        argv = [
            "systemd-nspawn",
            "--register=no",
            "--keep-unit",
            "-D",
            "/",
            "--volatile=yes",
            "-M",
            self.name,
            "--console=passive",
            *[f"--bind={b}" for b in self.binds],
            *[f"--bind-ro={b}" for b in self.binds_ro],
            *self._journal_args(),
            *(["--private-network"] if self.private_network else []),
            "-b",
            "--",
            "systemd.firstboot=off",
        ]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
            )
        deadline = time.monotonic() + BOOT_TIMEOUT
        while self.init_pid is None:
            if self.proc.poll() is not None:
                raise SandboxError(f"systemd-nspawn exited {self.proc.returncode}: {self.log()}")
            self.init_pid = self._find_init()
            if self.init_pid is None:
                if time.monotonic() > deadline:
                    self.kill()
                    raise SandboxError("the sandbox's systemd did not appear")
                time.sleep(0.02)
        while True:
            out = self.run("systemctl", "is-system-running", "--wait", check=False, timeout=30)
            state = out.stdout.strip()
            if state in ("running", "degraded"):
                return
            if time.monotonic() > deadline:
                self.poweroff()
                raise SandboxError(f"the sandbox did not boot ({state}): {self.log()}")
            time.sleep(0.05)  # the bus is not up for the first ~0.1 s

    def _journal_args(self) -> list[str]:
        if self.journal is None:
            return []
        self.journal.mkdir(parents=True, exist_ok=True)
        id_file = self.journal.parent / f"{self.journal.name}.machine-id"
        if not id_file.exists():  # one machine id for every boot: one journal to read
            id_file.write_text(uuid.uuid4().hex + "\n")
        machine_id = id_file.read_text().strip()
        return [
            f"--uuid={machine_id}",
            "--link-journal=no",
            f"--bind={self.journal}:/var/log/journal",
        ]

    def _find_init(self) -> int | None:
        """The `systemd` whose parent is an nspawn we started (outer or inner)."""
        assert self.proc is not None
        todo = [self.proc.pid]
        seen: set[int] = set()
        while todo:
            pid = todo.pop()
            if pid in seen:
                continue
            seen.add(pid)
            for kid in _children(pid):
                if _comm(kid) == "systemd" and _comm(pid) == "systemd-nspawn":
                    return kid
                if _comm(kid) == "systemd-nspawn":
                    todo.append(kid)
        return None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def command(self, *argv: str) -> list[str]:
        if self.init_pid is None:
            raise SandboxError("the sandbox is not booted")
        return ["nsenter", "-t", str(self.init_pid), "-a", *argv]

    def run(
        self,
        *argv: str,
        check: bool = True,
        timeout: float = 120,
        input: str | None = None,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside the sandbox (all namespaces of its init)."""
        full = self.command(*argv)
        if env:
            full = self.command("env", *[f"{k}={v}" for k, v in env.items()], *argv)
        out = subprocess.run(
            full, capture_output=True, text=True, timeout=timeout, input=input, check=False
        )
        if check and out.returncode != 0:
            raise SandboxError(
                f"{' '.join(argv)} exited {out.returncode} in the sandbox: "
                f"{out.stderr.strip() or out.stdout.strip()}"
            )
        return out

    def poweroff(self, timeout: float = 30) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None and self.init_pid is not None:
            self.run("systemctl", "poweroff", check=False, timeout=10)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self.kill()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
