"""Every filesystem path of the hive, from one place, movable with environment variables.

Paths that hold an agent's name go through `validate_agent_name` first, so no caller can
build a path from an unchecked name.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .names import MANAGER, validate_agent_name

DEFAULT_STATE_DIR = "/var/lib/hyperhive"
DEFAULT_RUNTIME_DIR = "/run/hyperhive"


@dataclass(frozen=True)
class Paths:
    """The hive's directories and files; build one with `Paths.from_env()`."""

    state_dir: Path
    runtime_dir: Path
    db: Path

    @classmethod
    def from_env(cls, env: os._Environ[str] | dict[str, str] | None = None) -> Paths:
        e = os.environ if env is None else env
        state = Path(e.get("HIVE_STATE_DIR") or DEFAULT_STATE_DIR)
        runtime = Path(e.get("HIVE_RUNTIME_DIR") or DEFAULT_RUNTIME_DIR)
        db = Path(e.get("HIVE_DB") or state / "hive.db")
        return cls(state_dir=state, runtime_dir=runtime, db=db)

    # sockets -----------------------------------------------------------------------------
    @property
    def admin_socket(self) -> Path:
        return self.runtime_dir / "host.sock"

    @property
    def manager_socket_dir(self) -> Path:
        return self.runtime_dir / "manager"

    @property
    def manager_socket(self) -> Path:
        return self.manager_socket_dir / "hive.sock"

    @property
    def agents_socket_root(self) -> Path:
        return self.runtime_dir / "agents"

    def agent_socket_dir(self, name: str) -> Path:
        return self.agents_socket_root / validate_agent_name(name, allow_manager=False)

    def agent_socket(self, name: str) -> Path:
        return self.agent_socket_dir(name) / "hive.sock"

    def socket_of(self, name: str) -> Path:
        """The socket an agent's harness talks to: the manager's own, or its per-agent one."""
        if validate_agent_name(name) == MANAGER:
            return self.manager_socket
        return self.agent_socket(name)

    @property
    def gateway_dir(self) -> Path:
        """The model gateway's runtime dir: one socket dir per agent, and its doorbell."""
        return self.runtime_dir / "gateway"

    def gateway_socket_dir(self, name: str) -> Path:
        """The dir bound (read-only) into `name`'s container, holding its gateway socket."""
        return self.gateway_dir / validate_agent_name(name)

    def gateway_socket(self, name: str) -> Path:
        """Where `name`'s harness reaches the model gateway: identity is which socket."""
        return self.gateway_socket_dir(name) / "api.sock"

    @property
    def gateway_doorbell(self) -> Path:
        """Datagram socket the coordinator rings when the agents table changed."""
        return self.gateway_dir / "doorbell.sock"

    @property
    def doorbell(self) -> Path:
        """Datagram socket other processes ring after a durable write the coordinator must see."""
        return self.runtime_dir / "doorbell.sock"

    @property
    def notify_dir(self) -> Path:
        """hive-notify's own runtime dir (its unit's RuntimeDirectory=)."""
        return self.runtime_dir / "notify"

    @property
    def notify_doorbell(self) -> Path:
        """Datagram socket producers ring after queueing a notice in the `outbox`."""
        return self.notify_dir / "doorbell.sock"

    # state ---------------------------------------------------------------------------------
    @property
    def web_password(self) -> Path:
        """The dashboard password's scrypt hash (0600, the coordinator's alone)."""
        return self.state_dir / "web-password"

    @property
    def agents_dir(self) -> Path:
        return self.state_dir / "agents"

    def agent_dir(self, name: str) -> Path:
        return self.agents_dir / validate_agent_name(name)

    def proposed_repo(self, name: str) -> Path:
        return self.agent_dir(name) / "config"

    @property
    def agent_state_dir(self) -> Path:
        """Root-only parent of every agent's state dir; no container sees it."""
        return self.state_dir / "agent-state"

    def agent_state(self, name: str) -> Path:
        """An agent's /state: out of the manager's /agents, so no agent can swap it for a link."""
        return self.agent_state_dir / validate_agent_name(name)

    def legacy_agent_state(self, name: str) -> Path:
        """Where an agent's state dir was before `agent_state_dir` (migrated at start)."""
        return self.agent_dir(name) / "state"

    @property
    def private_tmp(self) -> Path:
        """Root-only scratch space on the state dir's filesystem (repo copies, new repos)."""
        return self.state_dir / "tmp"

    def hive_roots(self) -> tuple[Path, ...]:
        """The hive's own directories, as configured and with links resolved: no agent's bind
        may reach into (or above) one of them."""
        dirs = (self.state_dir, self.runtime_dir, self.db.parent)
        return tuple(dict.fromkeys(p for d in dirs for p in (d, d.resolve())))

    @property
    def applied_dir(self) -> Path:
        return self.state_dir / "applied"

    def applied_repo(self, name: str) -> Path:
        return self.applied_dir / validate_agent_name(name)

    def rev_marker(self, name: str) -> Path:
        return self.applied_dir / f".{validate_agent_name(name)}.hyperhive-rev"

    @property
    def network_migrated(self) -> Path:
        """Marker: applied configs from before `network` defaulted to private were given an
        explicit `network = "host"` once (docs/operations.md, "Upgrade")."""
        return self.applied_dir / ".network-migrated"

    # egress ------------------------------------------------------------------------------
    @property
    def egress_root(self) -> Path:
        return self.runtime_dir / "egress"

    def egress_dir(self, name: str) -> Path:
        """An egress agent's proxy config and link, copied from its applied repo at create."""
        return self.egress_root / validate_agent_name(name)
