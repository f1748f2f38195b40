"""Test support: a real coordinator process on a temp state dir, clients for its sockets, and
what flow tests share with the in-process hive (`tests.inproc`): the `Hive` shape, `spawn`.
"""

from __future__ import annotations

import os
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, overload

from hyperhive.agent.gateway import Gateway, GatewayDown, Status
from hyperhive.hive.client import HiveClient
from hyperhive.hive.paths import Paths

REPO = Path(__file__).resolve().parent.parent


def reap_agents(runtime_dir: str) -> list[int]:
    """Kill agent payloads a test's coordinators left behind (one killed with SIGKILL, or one
    too slow to stop): the processes whose HIVE_SOCKET lies under `runtime_dir`."""
    mark = f"HIVE_SOCKET={runtime_dir}/".encode()
    killed = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if mark in (proc / "environ").read_bytes():
                os.kill(int(proc.name), signal.SIGKILL)
                killed.append(int(proc.name))
        except (OSError, ProcessLookupError):
            continue
    return killed


def wait_serving(paths: Paths, name: str, timeout: float = 30) -> Status:
    """The model gateway's status for `name`, waiting (inotify on its dir, as the harness
    does) until its socket answers."""
    gateway = Gateway(paths.gateway_socket(name))
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                return gateway.status()
            except GatewayDown:
                left = deadline - time.monotonic()
                assert left > 0, f"the gateway never served {name}"
                gateway.wait_for_socket(left)
    finally:
        gateway.close()


def free_port() -> int:
    """A loopback port nobody listens on now (the demo may hold the default 7800)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def hive_env(root: Path, **extra: str) -> dict[str, str]:
    """Environment for hive processes living under `root` (state) and a short runtime dir.

    With ANTHROPIC_BASE_URL in `extra` (the fake API), the coordinator's process backend runs
    the model gateway, which takes that URL and ANTHROPIC_API_KEY; without it, no gateway
    runs (the agents of most tests never call the model)."""
    runtime = Path(tempfile.mkdtemp(prefix="hh-", dir="/tmp"))
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("HIVE_", "NOTIFY_SOCKET", "WATCHDOG_", "LISTEN_", "ANTHROPIC_"))
    }
    env.update(
        HIVE_STATE_DIR=str(root / "state"),
        HIVE_RUNTIME_DIR=str(runtime),
        HIVE_BACKEND="process",
        HIVE_LOG="stderr",
        HIVE_AGENT_COMMAND="sleep infinity",  # a real payload process that just stays up
        PYTHONPATH=str(REPO),
    )
    if "ANTHROPIC_BASE_URL" not in extra:
        env["HIVE_GATEWAY_COMMAND"] = ""  # no model API: no gateway
    env.update(extra)
    return env


class Client(Protocol):
    """A connection to one of the hive's sockets: a `HiveClient`, or an in-process `Peer`."""

    def call(self, cmd: str, **fields: Any) -> dict[str, Any]: ...

    def request(self, obj: dict[str, Any]) -> dict[str, Any]: ...

    def close(self) -> None: ...

    def __enter__(self) -> Client: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class Hive(Protocol):
    """What a flow test needs of a hive, a `RunningHive` or an `InProcessHive`: its paths and
    connections as the operator, hm1nd and the agents (with a command: that command's reply,
    a refusal raised as `Refused`)."""

    env: dict[str, str]
    paths: Paths

    @overload
    def admin(self, /) -> Client: ...
    @overload
    def admin(self, cmd: str, /, **fields: Any) -> dict[str, Any]: ...

    @overload
    def manager(self, /) -> Client: ...
    @overload
    def manager(self, cmd: str, /, **fields: Any) -> dict[str, Any]: ...

    @overload
    def agent(self, name: str, /) -> Client: ...
    @overload
    def agent(self, name: str, cmd: str, /, **fields: Any) -> dict[str, Any]: ...


def spawn(hive: Hive, *names: str) -> list[dict[str, Any]]:
    """Spawn agents as the operator does, each checked to come up running; their rows."""
    rows = []
    with hive.admin() as a:
        for name in names:
            row: dict[str, Any] = a.call("spawn", name=name)["agent"]
            assert row["state"] == "running", f"{name} did not come up: {row}"
            rows.append(row)
    return rows


class RunningHive:
    """A coordinator process; `stop()` ends it by its PID."""

    def __init__(self, env: dict[str, str], argv: list[str] | None = None, **popen: Any) -> None:
        self.env = env
        self.paths = Paths.from_env(env)
        self.log_path = Path(env["HIVE_STATE_DIR"]).parent / f"coordinator-{time.time_ns()}.log"
        Path(env["HIVE_STATE_DIR"]).parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            argv or [sys.executable, "-m", "hyperhive.coordinator"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=self._log,
            cwd=REPO,
            **popen,
        )
        self._wait_ready()

    def _wait_ready(
        self,
        timeout: float = 20.0,
        marker: bytes = b"hive-c0re is serving",
        what: str = "coordinator",
    ) -> None:
        """Until the process prints `marker` on stdout; fail with its log if it exits or stalls."""
        assert self.proc.stdout is not None
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        seen = b""
        while marker not in seen:
            left = deadline - time.monotonic()
            if left <= 0 or not sel.select(left):
                self.stop()
                raise AssertionError(f"{what} not ready: {self.log()}")
            chunk = os.read(self.proc.stdout.fileno(), 4096)
            if not chunk:
                self.proc.wait()
                raise AssertionError(f"{what} exited {self.proc.returncode}: {self.log()}")
            seen += chunk
        sel.close()

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    @overload
    def admin(self, /, *, timeout: float | None = 30.0) -> HiveClient: ...
    @overload
    def admin(self, cmd: str, /, **fields: Any) -> dict[str, Any]: ...
    def admin(self, cmd: str | None = None, /, **kw: Any) -> HiveClient | dict[str, Any]:
        """A client of the admin socket; with a command, its reply on a connection of its own."""
        return _open(self.paths.admin_socket, cmd, kw)

    @overload
    def manager(self, /, *, timeout: float | None = 30.0) -> HiveClient: ...
    @overload
    def manager(self, cmd: str, /, **fields: Any) -> dict[str, Any]: ...
    def manager(self, cmd: str | None = None, /, **kw: Any) -> HiveClient | dict[str, Any]:
        return _open(self.paths.manager_socket, cmd, kw)

    @overload
    def agent(self, name: str, /, *, timeout: float | None = 30.0) -> HiveClient: ...
    @overload
    def agent(self, name: str, cmd: str, /, **fields: Any) -> dict[str, Any]: ...
    def agent(self, name: str, cmd: str | None = None, /, **kw: Any) -> HiveClient | dict[str, Any]:
        return _open(self.paths.socket_of(name), cmd, kw)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._log.close()
        return self.proc.returncode


def _open(path: Path, cmd: str | None, kw: dict[str, Any]) -> HiveClient | dict[str, Any]:
    if cmd is None:
        return HiveClient(path, **kw)
    with HiveClient(path) as client:
        return client.call(cmd, **kw)


@contextmanager
def running_hive(env: dict[str, str], **kw: Any) -> Iterator[RunningHive]:
    hive = RunningHive(env, **kw)
    try:
        yield hive
    finally:
        hive.stop()


def hivectl(
    env: dict[str, str], *args: str, timeout: float = 30, input_text: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hyperhive.cli", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input_text,
    )
