"""The `nspawn` backend: one `hive-agent@<name>.service` per agent, running systemd-nspawn
on the host's /usr with a volatile root, registered with machined as h-<name> (hm1nd).

What the applied config says becomes a unit drop-in committed in the applied repo and
installed under /run/systemd/system; a rebuild regenerates it and restarts the unit.
Crashes are the crash watcher's to report, not this backend's.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

from ...hive.agentconfig import CONFIG_FILE
from ...hive.egress import AGENT_IFNAME
from ...hive.names import machine_name
from ...hive.paths import Paths
from ...hive.platform import PACKAGE, platform_paths
from ...hive.vocab import Network
from .. import agentfiles, egress, layers, repos, sockets, units
from . import AgentSpec, ExitHandler, git_identity

DROPIN = "hive-agent.conf"
NSPAWN = "/usr/bin/systemd-nspawn"
SOCKET_IN_CONTAINER = "/run/hive"
APPLIED_IN_CONTAINER = "/hive/applied"
GATEWAY_IN_CONTAINER = "/run/hive-gateway"
"""The agent's gateway socket dir, bound read-only: the model is reached there, and the
container never holds the API key."""
JOURNAL_SOCKET = "/run/systemd/journal/socket"
DROPPED_CAPABILITIES = (
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_MKNOD",
    "CAP_AUDIT_CONTROL",
    "CAP_AUDIT_WRITE",
    "CAP_SYS_TTY_CONFIG",
    "CAP_LINUX_IMMUTABLE",
)
"""Taken from the payload on top of nspawn's own reductions: under a user namespace they act
only on the container's own namespaces, and the harness needs none of them (docs/security.md)."""
NSPAWN_RUNTIME = "/run/systemd/nspawn"
"""Where nspawn keeps its per-container files: writable under ProtectSystem=strict."""


_PLAIN_PATH = re.compile(r"/[A-Za-z0-9._+@=,/-]*")


def unit_name(agent: str) -> str:
    return f"hive-agent@{agent}.service"


def quote(arg: str) -> str:
    """One ExecStart= word, quoted so systemd passes it through unchanged."""
    out = arg.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    out = out.replace("%", "%%").replace("$", "$$")
    return f'"{out}"'


class NspawnBackend:
    name = "nspawn"
    private_users = True  # each agent's container runs under a uid range of its own

    def __init__(
        self,
        paths: Paths,
        *,
        command: list[str] | None = None,
        unit_dir: Path = Path("/run/systemd/system"),
    ) -> None:
        self.paths = paths
        self.command = command or [sys.executable, "-m", f"{PACKAGE}.agent"]
        self.unit_dir = unit_dir
        self.layers_dir = paths.state_dir / "layers"

    def set_exit_handler(self, handler: ExitHandler) -> None:
        pass  # the crash watcher reports exits from machined's signals

    # rendering -------------------------------------------------------------------------
    def nspawn_argv(self, spec: AgentSpec, layer: Path | None) -> list[str]:
        c = spec.config
        argv = [
            NSPAWN,
            "--quiet",
            "--keep-unit",
            "--register=yes",
            "--as-pid2",
            "--directory=/",
            "--volatile=yes",
            f"--machine={machine_name(spec.name)}",
            "--settings=no",
            "--no-new-privileges=yes",
            *self.userns_argv(spec),
            f"--bind={spec.state_dir}:/state",
            f"--bind={spec.socket.parent}:{SOCKET_IN_CONTAINER}",
            f"--bind-ro={self.paths.gateway_socket_dir(spec.name)}:{GATEWAY_IN_CONTAINER}",
            f"--bind-ro={self.paths.applied_repo(spec.name)}:{APPLIED_IN_CONTAINER}",
            f"--bind-ro={JOURNAL_SOCKET}",  # structured lines (HIVE_AGENT=) reach the journal
            *[f"--bind-ro={p}" for p in platform_paths()],
        ]
        if spec.agents_dir is not None:
            argv.append(f"--bind={spec.agents_dir}:/agents")
        for b in c.binds:
            argv.append(f"--bind{'-ro' if b.readonly else ''}={b.source}:{b.target}")
        if layer is not None:
            argv.append(f"--overlay-ro=/usr:{layer / 'usr'}:/usr")
        argv += self.network_args(spec)
        env = {
            **c.environment,
            **self.network_env(spec),
            **git_identity(spec.name),
            "HIVE_AGENT": spec.name,
            "HIVE_AGENT_KIND": spec.kind,
            "HIVE_SOCKET": f"{SOCKET_IN_CONTAINER}/{spec.socket.name}",
            "HIVE_GATEWAY_SOCKET": f"{GATEWAY_IN_CONTAINER}/api.sock",
            "HIVE_AGENT_STATE": "/state",
            "HIVE_AGENT_CONFIG": f"{APPLIED_IN_CONTAINER}/{CONFIG_FILE}",
            "HOME": "/state",
        }
        if spec.agents_dir is not None:
            env["HIVE_AGENTS_DIR"] = "/agents"
        argv += [f"--setenv={k}={v}" for k, v in sorted(env.items())]
        argv += ["--chdir=/state", "--", *self.command]
        return argv

    def network_args(self, spec: AgentSpec) -> list[str]:
        """private: only loopback; egress: a veth of its own to the host (its proxy's side
        is set up by hive-egress@NAME); host: the host's network, nothing to add."""
        network = spec.config.network
        if network is Network.PRIVATE:
            return ["--private-network"]
        if network is Network.EGRESS:
            link = egress.link(self.paths, spec.name)
            return [f"--network-veth-extra={link.ifname}:{AGENT_IFNAME}"]
        return []

    def network_env(self, spec: AgentSpec) -> dict[str, str]:
        if spec.config.network is not Network.EGRESS:
            return {}
        return egress.link(self.paths, spec.name).environment()

    # user namespace and the unit's view of the host (docs/security.md) -------------------
    def userns_argv(self, spec: AgentSpec) -> list[str]:
        """Root in the container is `spec.ids.base` on the host; nothing is chowned by nspawn
        (the coordinator gives the agent its files), and the payload loses what it never needs."""
        if spec.ids is None:
            return []
        return [*spec.ids.nspawn_args(), f"--drop-capability={','.join(DROPPED_CAPABILITIES)}"]

    def writable_paths(self, spec: AgentSpec) -> list[str] | None:
        """What nspawn may write under the unit's ProtectSystem=strict: its runtime dir and
        the sources of the container's writable binds. None when a source has a character a
        unit file would read differently (then the unit keeps the host writable, as before)."""
        sources = [str(spec.state_dir)]
        if spec.agents_dir is not None:
            sources.append(str(spec.agents_dir))
        sources += [b.source for b in spec.config.binds if not b.readonly]
        if any(not _PLAIN_PATH.fullmatch(p) for p in sources):
            return None
        return [NSPAWN_RUNTIME, *sources]

    def sandbox_lines(self, spec: AgentSpec) -> list[str]:
        writable = self.writable_paths(spec)
        if spec.ids is None or writable is None:
            return []
        return [
            "ProtectSystem=strict",
            "ProtectHome=read-only",
            "PrivateTmp=yes",
            "ReadWritePaths=" + " ".join(f"-{p}" for p in writable),
        ]

    def render(self, spec: AgentSpec) -> dict[str, bytes]:
        c = spec.config
        layer = self.layers_dir / layers.layer_key(c.packages) if c.packages else None
        lines = ["# Generated by hive-c0re from agent.toml; do not edit."]
        if c.network is Network.EGRESS:  # its proxy starts with it and stops with it
            lines += ["[Unit]", f"Wants={egress.unit_name(spec.name)}"]
        lines += [
            "[Service]",
            "ExecStart=",
            "ExecStart=" + " ".join(quote(a) for a in self.nspawn_argv(spec, layer)),
            *self.sandbox_lines(spec),
        ]
        if c.memory:
            lines.append(f"MemoryMax={c.memory}")
        if c.cpu:
            lines.append(f"CPUQuota={round(c.cpu * 100)}%")
        if c.tasks:
            lines.append(f"TasksMax={c.tasks}")
        return {
            DROPIN: ("\n".join(lines) + "\n").encode(),
            **egress.render(self.paths, spec.name, c),
        }

    # lifecycle -------------------------------------------------------------------------
    def _dropin_dir(self, name: str) -> Path:
        return self.unit_dir / f"{unit_name(name)}.d"

    def create(self, spec: AgentSpec) -> None:
        # a real dir of ours (its container's root's, under a user namespace), or refused
        agentfiles.ensure_state_dir(self.paths, spec.name, spec.ids)
        if spec.ids is not None:
            if spec.agents_dir is not None:  # hm1nd writes every proposed repo
                agentfiles.give_agents_dir(self.paths, spec.ids)
            repos.share_applied(self.paths.applied_repo(spec.name))
        sockets.ensure_gateway_dir(self.paths, spec.name)  # nspawn binds it: it must exist
        layers.ensure_layer(self.layers_dir, spec.config.packages)
        source = self.paths.applied_repo(spec.name) / DROPIN
        target_dir = self._dropin_dir(spec.name)
        target_dir.mkdir(parents=True, exist_ok=True)
        target = target_dir / "50-applied.conf"
        tmp = target.with_name(".50-applied.conf.tmp")
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)
        egress.stop_proxy(spec.name)  # a proxy still up would keep its old config
        egress.install(self.paths, spec.name, spec.config)
        units.daemon_reload()

    def start(self, spec: AgentSpec) -> None:
        units.start(unit_name(spec.name))
        if spec.config.network is Network.EGRESS:  # Wants= starts it; a failure is told here
            units.start(egress.unit_name(spec.name))

    def stop(self, name: str) -> None:
        units.stop(unit_name(name))

    def kill(self, name: str) -> None:
        units.kill(unit_name(name))

    def destroy(self, name: str) -> None:
        units.stop(unit_name(name))
        egress.stop_proxy(name)
        egress.remove(self.paths, name)
        shutil.rmtree(self._dropin_dir(name), ignore_errors=True)
        units.daemon_reload()

    def is_running(self, name: str) -> bool:
        return units.active_state(unit_name(name)) in ("active", "activating", "reloading")

    def shutdown(self) -> None:
        pass  # containers are units of their own: they outlive a coordinator restart
