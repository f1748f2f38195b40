"""Container backends: how an agent's payload is created, started, stopped and removed.

`backend_from_env()` picks one by `HIVE_BACKEND`. A backend knows nothing of approvals,
messages or SQLite: it is handed an `AgentSpec` and reports unexpected exits to a handler.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ...hive.agentconfig import AgentConfig
from ...hive.paths import Paths
from ...hive.protocol import Refusal
from ...hive.userns import IdRange
from ...hive.vocab import Code

ExitHandler = Callable[[str, str], None]
"""(agent, note): the payload exited without being asked to; may be called from any thread."""


@dataclass(frozen=True)
class AgentSpec:
    """Everything a backend needs to run one agent."""

    name: str
    kind: str  # "manager" | "agent"
    config: AgentConfig
    socket: Path
    state_dir: Path
    config_path: Path
    agents_dir: Path | None  # the manager's /agents, None for sub-agents
    ids: IdRange | None = None  # the host uids its container runs as; None: no user namespace


def git_identity(name: str) -> dict[str, str]:
    """Who `git commit` records inside an agent's container: the agent itself, author and
    committer, in whatever repo it writes (hm1nd's commits to alice's repo are hm1nd's)."""
    email = f"{name}@hyperhive"
    return {
        "GIT_AUTHOR_NAME": name,
        "GIT_AUTHOR_EMAIL": email,
        "GIT_COMMITTER_NAME": name,
        "GIT_COMMITTER_EMAIL": email,
    }


class BackendError(Refusal):
    """A container operation that failed; the message says what and why."""

    code = Code.UNAVAILABLE


class Backend(Protocol):
    name: str
    private_users: bool
    """Its containers run under a user namespace: each agent gets a uid range (`hive.userns`)."""

    def set_exit_handler(self, handler: ExitHandler) -> None: ...

    def render(self, spec: AgentSpec) -> dict[str, bytes]:
        """Files derived from the config, committed beside it in the applied repo."""

    def create(self, spec: AgentSpec) -> None:
        """Prepare what the container needs (idempotent)."""

    def start(self, spec: AgentSpec) -> None:
        """Start the payload (no-op if running)."""

    def stop(self, name: str) -> None:
        """Stop the payload gracefully (no-op if stopped)."""

    def kill(self, name: str) -> None:
        """Kill the payload at once."""

    def destroy(self, name: str) -> None:
        """Stop and remove the container's own artefacts (never repos or state)."""

    def is_running(self, name: str) -> bool: ...

    def shutdown(self) -> None:
        """The coordinator is exiting."""


class UnknownBackend(ValueError):
    pass


def backend_from_env(paths: Paths, env: dict[str, str] | None = None) -> Backend:
    e = env if env is not None else dict(os.environ)
    choice = e.get("HIVE_BACKEND") or "nspawn"
    if choice == "process":
        import shlex

        from .process import ProcessBackend, default_gateway_command

        gateway = e.get("HIVE_GATEWAY_COMMAND")
        return ProcessBackend(
            paths,
            command=e.get("HIVE_AGENT_COMMAND"),
            gateway_command=default_gateway_command() if gateway is None else shlex.split(gateway),
        )
    if choice == "nspawn":
        import shlex

        from .nspawn import NspawnBackend

        command = e.get("HIVE_AGENT_COMMAND")
        return NspawnBackend(paths, command=shlex.split(command) if command else None)
    raise UnknownBackend(
        f"HIVE_BACKEND={choice!r} is not available: use 'nspawn' (systemd hosts) or "
        "'process' (development and tests; nixos containers are not built yet)"
    )
