"""What the nspawn backend generates for a user-namespaced agent: the container's range and
dropped capabilities on nspawn's command line, and the unit's read-only view of the host with
exactly the paths nspawn must write."""

from __future__ import annotations

from pathlib import Path

from hyperhive.coordinator.backends import AgentSpec
from hyperhive.coordinator.backends.nspawn import NspawnBackend
from hyperhive.hive.agentconfig import parse
from hyperhive.hive.paths import Paths
from hyperhive.hive.userns import FIRST_BASE, IdRange

PATHS = Paths(
    state_dir=Path("/var/lib/hyperhive"), runtime_dir=Path("/run/hyperhive"), db=Path("/x")
)
BINDS = (
    '[[binds]]\nsource = "/srv/data"\ntarget = "/data"\nreadonly = false\n'
    '[[binds]]\nsource = "/srv/docs"\ntarget = "/docs"\n'
)


def spec(config: str, ids: IdRange | None, *, manager: bool = False) -> AgentSpec:
    name = "hm1nd" if manager else "alice"
    return AgentSpec(
        name=name,
        kind="manager" if manager else "agent",
        config=parse(config),
        socket=PATHS.socket_of(name),
        state_dir=PATHS.agent_state(name),
        config_path=PATHS.applied_repo(name) / "agent.toml",
        agents_dir=PATHS.agents_dir if manager else None,
        ids=ids,
    )


def dropin(s: AgentSpec) -> list[str]:
    return NspawnBackend(PATHS).render(s)["hive-agent.conf"].decode().splitlines()


def test_the_container_runs_in_its_range_and_loses_what_it_never_needs() -> None:
    argv = NspawnBackend(PATHS).nspawn_argv(spec(BINDS, IdRange(FIRST_BASE)), None)
    assert f"--private-users={FIRST_BASE}:65536" in argv
    assert "--private-users-ownership=off" in argv  # nspawn never chowns the host's /
    drop = next(a for a in argv if a.startswith("--drop-capability="))
    assert set(drop.split("=", 1)[1].split(",")) >= {"CAP_SYS_ADMIN", "CAP_MKNOD", "CAP_SYS_BOOT"}
    plain = NspawnBackend(PATHS).nspawn_argv(spec(BINDS, None), None)
    assert not [a for a in plain if a.startswith(("--private-users", "--drop-capability"))]


def test_the_unit_sees_the_host_read_only_but_what_nspawn_must_write() -> None:
    lines = dropin(spec(BINDS, IdRange(FIRST_BASE)))
    assert "ProtectSystem=strict" in lines and "ProtectHome=read-only" in lines
    assert (
        "ReadWritePaths=-/run/systemd/nspawn -/var/lib/hyperhive/agent-state/alice -/srv/data"
        in lines
    )
    manager = dropin(spec("", IdRange(FIRST_BASE), manager=True))
    assert (
        "ReadWritePaths=-/run/systemd/nspawn -/var/lib/hyperhive/agent-state/hm1nd "
        "-/var/lib/hyperhive/agents"
    ) in manager


def test_a_writable_source_a_unit_file_would_misread_keeps_the_host_writable() -> None:
    odd = '[[binds]]\nsource = "/srv/my data"\ntarget = "/data"\nreadonly = false\n'
    lines = dropin(spec(odd, IdRange(FIRST_BASE)))
    assert not [line for line in lines if line.startswith(("ProtectSystem", "ReadWritePaths"))]
    assert any(f"--private-users={FIRST_BASE}:65536" in line for line in lines)  # still namespaced
