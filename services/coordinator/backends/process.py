"""The `process` backend: each agent's harness is a plain subprocess, no isolation.

For development and fast tests. The payload's output goes to the journal with
HIVE_AGENT=<name>; an exit nobody asked for is reported to the exit handler with the
exit status and the last lines of output. A pidfile lets a restarted coordinator stop
orphans of a coordinator that was killed. It also runs the model gateway as a child
(`HIVE_GATEWAY_COMMAND`), which takes the key and ANTHROPIC_BASE_URL from this process's
environment; the harnesses get neither, only their gateway socket.
"""

from __future__ import annotations

import collections
import contextlib
import os
import shlex
import signal
import subprocess
import sys
import threading
from pathlib import Path

from ...hive import log as hlog
from ...hive.paths import Paths
from ...hive.platform import PACKAGE
from .. import agentfiles, sockets
from . import AgentSpec, BackendError, ExitHandler, git_identity

STOP_TIMEOUT = 10.0
TAIL_LINES = 20
PASS_THROUGH = ("PATH", "LANG", "TZ", "PYTHONPATH")
NOT_FOR_THE_GATEWAY = (
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
)
GATEWAY_RESTART_CAP = 30.0


class _Child:
    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.expected_exit = False
        self.tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self.reader: threading.Thread | None = None


def default_gateway_command() -> list[str]:
    return [sys.executable, "-m", f"{PACKAGE}.gateway"]


class GatewayChild:
    """The model gateway as this coordinator's child: started once, restarted if it dies
    (with a growing pause), stopped with the backend; it exits by itself if we die."""

    def __init__(self, command: list[str]) -> None:
        self.command = command
        self.proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._stopping = False
        self._pause = 1.0
        self._wake = threading.Event()

    def ensure(self) -> None:
        with self._lock:
            if self._stopping or (self.proc is not None and self.proc.poll() is None):
                return
            self._start_locked()

    def _start_locked(self) -> None:
        env = {k: v for k, v in os.environ.items() if k not in NOT_FOR_THE_GATEWAY}
        env["HIVE_GATEWAY_EXIT_WITH"] = str(os.getpid())
        try:
            self.proc = subprocess.Popen(
                self.command,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                process_group=0,  # a Ctrl-C reaches the coordinator, which stops it
            )
        except OSError as e:
            raise BackendError(
                f"could not start the model gateway ({self.command[0]}): {e}"
            ) from None
        threading.Thread(
            target=self._follow, args=(self.proc,), name="gateway", daemon=True
        ).start()
        hlog.log(f"model gateway started (pid {self.proc.pid})", kind="gateway")

    def _follow(self, proc: subprocess.Popen[bytes]) -> None:
        code = proc.wait()
        with self._lock:
            if self._stopping or proc is not self.proc:
                return
            pause = self._pause
            self._pause = min(self._pause * 2, GATEWAY_RESTART_CAP)
        hlog.log(
            f"the model gateway exited (status {code}): starting it again in {pause:g} s",
            kind="gateway",
            priority=hlog.ERR,
        )
        if self._wake.wait(pause):
            return
        with self._lock:
            if not self._stopping and proc is self.proc:
                try:
                    self._start_locked()
                except BackendError as e:
                    hlog.log(str(e), kind="gateway", priority=hlog.ERR)

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            self._wake.set()
            proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait()


class ProcessBackend:
    name = "process"
    private_users = False  # the harness runs as the coordinator's own user

    def __init__(
        self,
        paths: Paths,
        command: str | None = None,
        gateway_command: list[str] | None = None,
    ) -> None:
        """`gateway_command`: how to run the model gateway (None: no gateway, for tests
        whose agents never call the model)."""
        self.paths = paths
        self.command = (
            shlex.split(command) if command else [sys.executable, "-m", f"{PACKAGE}.agent"]
        )
        self.gateway = GatewayChild(gateway_command) if gateway_command else None
        self._children: dict[str, _Child] = {}
        self._lock = threading.Lock()
        self._on_exit: ExitHandler = lambda agent, note: None

    def set_exit_handler(self, handler: ExitHandler) -> None:
        self._on_exit = handler

    def _pidfile(self, name: str) -> Path:
        return self.paths.runtime_dir / "process" / f"{name}.pid"

    def render(self, spec: AgentSpec) -> dict[str, bytes]:
        env = self._env(spec)
        lines = [f"{k}={shlex.quote(v)}" for k, v in sorted(env.items()) if k != "PATH"]
        return {"harness.env": ("\n".join(lines) + "\n").encode()}

    def create(self, spec: AgentSpec) -> None:
        agentfiles.ensure_state_dir(self.paths, spec.name)  # a real dir of ours, or refused
        sockets.ensure_gateway_dir(self.paths, spec.name)
        if self.gateway is not None:
            self.gateway.ensure()

    def _env(self, spec: AgentSpec) -> dict[str, str]:
        env = {
            k: v for k, v in os.environ.items() if k in PASS_THROUGH or k.startswith("HIVE_AGENT_")
        }
        env.pop("HIVE_AGENT_COMMAND", None)
        env.update(spec.config.environment)
        env.update(git_identity(spec.name))
        env.update(
            HIVE_AGENT=spec.name,
            HIVE_AGENT_KIND=spec.kind,
            HIVE_SOCKET=str(spec.socket),
            HIVE_GATEWAY_SOCKET=str(self.paths.gateway_socket(spec.name)),
            HIVE_AGENT_STATE=str(spec.state_dir),
            HIVE_AGENT_CONFIG=str(spec.config_path),
            HOME=str(spec.state_dir),
        )
        if spec.agents_dir is not None:
            env["HIVE_AGENTS_DIR"] = str(spec.agents_dir)
        return env

    def start(self, spec: AgentSpec) -> None:
        with self._lock:
            child = self._children.get(spec.name)
            if child is not None and child.proc.poll() is None:
                return
            self._reap_orphan(spec.name)
            try:
                proc = subprocess.Popen(
                    self.command,
                    env=self._env(spec),
                    cwd=spec.state_dir,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    process_group=0,
                )
            except OSError as e:
                raise BackendError(
                    f"could not start {spec.name}'s harness ({self.command[0]}): {e}"
                ) from None
            child = _Child(proc)
            self._children[spec.name] = child
            pidfile = self._pidfile(spec.name)
            pidfile.parent.mkdir(parents=True, exist_ok=True)
            pidfile.write_text(f"{proc.pid}\n")
            child.reader = threading.Thread(
                target=self._follow, args=(spec.name, child), name=f"agent-{spec.name}", daemon=True
            )
            child.reader.start()

    def _follow(self, name: str, child: _Child) -> None:
        assert child.proc.stdout is not None
        for raw in child.proc.stdout:
            line = raw.decode("utf-8", errors="replace").rstrip("\n")
            child.tail.append(line)
            hlog.log(line, kind="agent_output", agent=name)
        code = child.proc.wait()
        child.proc.stdout.close()
        with contextlib.suppress(FileNotFoundError):
            self._pidfile(name).unlink()
        if not child.expected_exit:
            status = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
            tail = "\n".join(child.tail)
            self._on_exit(
                name, f"the harness exited ({status})" + (f"; last output:\n{tail}" if tail else "")
            )

    def _signal(self, name: str, sig: int, timeout: float | None) -> None:
        with self._lock:
            child = self._children.get(name)
        if child is None or child.proc.poll() is not None:
            return
        child.expected_exit = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.proc.pid, sig)
        try:
            child.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.proc.pid, signal.SIGKILL)
            child.proc.wait()
        if child.reader is not None:
            child.reader.join(5)

    def stop(self, name: str) -> None:
        self._signal(name, signal.SIGTERM, STOP_TIMEOUT)

    def kill(self, name: str) -> None:
        self._signal(name, signal.SIGKILL, STOP_TIMEOUT)

    def destroy(self, name: str) -> None:
        self.stop(name)
        with self._lock:
            self._children.pop(name, None)

    def is_running(self, name: str) -> bool:
        with self._lock:
            child = self._children.get(name)
        return child is not None and child.proc.poll() is None

    def pid(self, name: str) -> int | None:
        with self._lock:
            child = self._children.get(name)
        return child.proc.pid if child is not None and child.proc.poll() is None else None

    def shutdown(self) -> None:
        for name in list(self._children):
            self.stop(name)
        if self.gateway is not None:
            self.gateway.stop()

    def _reap_orphan(self, name: str) -> None:
        """Stop a harness left behind by a coordinator that was killed."""
        child = self._children.get(name)
        if child is not None and child.proc.poll() is None:
            return
        try:
            pid = int(self._pidfile(name).read_text())
        except (FileNotFoundError, ValueError):
            return
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            environ = []
        if f"HIVE_AGENT={name}".encode() in environ:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        self._pidfile(name).unlink(missing_ok=True)
