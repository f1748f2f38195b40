"""Test support: the agent harness as a real subprocess, wired to a test hive and the fake API.

It gets exactly the environment a backend gives it (HIVE_AGENT, HIVE_SOCKET,
HIVE_GATEWAY_SOCKET, HIVE_AGENT_STATE, HIVE_AGENT_CONFIG, HIVE_AGENT_KIND, HIVE_AGENTS_DIR;
never a key), logs to stderr, and tests wait on its log lines (no sleeps). It reaches the
fake API through the model gateway the test's coordinator runs (the `env` fixture gives a
test using `fake` one). `stop()` ends it by its PID.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from hyperhive.hive.names import MANAGER

from tests.fakeapi.server import FakeAnthropic
from tests.hivetest import REPO, RunningHive

FAST = {
    "HIVE_AGENT_RETRY_BASE": "0.05",
    "HIVE_AGENT_RETRY_CAP": "0.2",
    "HIVE_AGENT_LOGIN_RECHECK": "60",
    "HIVE_AGENT_BASH_TIMEOUT": "20",
}


class HarnessProcess:
    def __init__(
        self,
        hive: RunningHive,
        name: str,
        *,
        config: str | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.hive = hive
        self.state = hive.paths.agent_state(name)
        self.state.mkdir(parents=True, exist_ok=True)
        manager = name == MANAGER
        self.config_path = self.state.parent / "applied-agent.toml"
        self.config_path.write_text(config or "")
        base = {k: v for k, v in os.environ.items() if not k.startswith(("HIVE_", "ANTHROPIC_"))}
        self.env = {
            **base,
            **FAST,
            "PYTHONPATH": str(REPO),
            "HIVE_LOG": "stderr",
            "HOME": str(self.state),
            "HIVE_AGENT": name,
            "HIVE_SOCKET": str(hive.paths.socket_of(name)),
            "HIVE_GATEWAY_SOCKET": str(hive.paths.gateway_socket(name)),
            "HIVE_AGENT_STATE": str(self.state),
            "HIVE_AGENT_CONFIG": str(self.config_path),
            "HIVE_AGENT_KIND": "manager" if manager else "agent",
            **({"HIVE_AGENTS_DIR": str(hive.paths.agents_dir)} if manager else {}),
            **(env or {}),
        }
        self.output: list[str] = []
        self._cond = threading.Condition()
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        """Start (or start again after `stop`) the harness process."""
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hyperhive.agent"],
            env=self.env,
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()

    def _read(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stderr is not None
        for raw in proc.stderr:
            with self._cond:
                self.output.append(raw.decode(errors="replace").rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def lines(self, text: str) -> list[str]:
        with self._cond:
            return [line for line in self.output if text in line]

    def wait_log(self, text: str, count: int = 1, timeout: float = 30.0) -> str:
        """Block until `count` log lines contain `text`; return the last of them."""

        def found() -> bool:
            return len([line for line in self.output if text in line]) >= count or not self.alive

        with self._cond:
            self._cond.wait_for(found, timeout)
            hits = [line for line in self.output if text in line]
            if len(hits) < count:
                state = "running" if self.alive else f"exited {self.returncode}"
                log = "\n".join(self.output[-60:])
                raise AssertionError(f"harness ({state}) never logged {text!r}:\n{log}")
            return hits[count - 1]

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int | None:
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            os.kill(proc.pid, sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
        return proc.returncode

    def __enter__(self) -> HarnessProcess:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def conversation(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.state / "conversation.json").read_text())
        return data


def turn_state(hive: RunningHive, name: str) -> dict[str, Any]:
    """The agent's last reported turn state, as the operator sees it."""
    with hive.admin() as admin:
        rows = admin.call("agent_status", name=name)["agents"]
    turn: dict[str, Any] = rows[0]["turn"] or {}
    return turn


@pytest.fixture(name="fake")
def fake_api() -> Iterator[FakeAnthropic]:
    """Fixture `fake`: the stand-in Messages API for one test (import it into the module)."""
    with FakeAnthropic() as api:
        yield api


def operator_says(hive: RunningHive, to: str, body: str) -> None:
    with hive.admin() as admin:
        admin.call("send", to=to, body=body)


def admin(hive: RunningHive, cmd: str, **fields: Any) -> dict[str, Any]:
    with hive.admin() as client:
        return client.call(cmd, **fields)


def recv(hive: RunningHive, name: str, wait: float = 30) -> dict[str, Any]:
    """The next message for `name`, waiting for it (an agent's socket, not the harness)."""
    with hive.agent(name) as client:
        message = client.call("recv", wait_seconds=wait)["message"]
    assert message is not None, f"nothing arrived for {name} in {wait} s"
    return dict(message)


def exits_within(pid: int, timeout: float) -> bool:
    """Whether process `pid` (not our child) has exited or exits within `timeout`."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        ready, _, _ = select.select([fd], [], [], timeout)  # readable once it exited
        return bool(ready)
    finally:
        os.close(fd)
