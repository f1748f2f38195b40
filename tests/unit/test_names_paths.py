"""Agent names are refused before any path is built; paths come from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest
from hyperhive.hive.names import InvalidName, machine_name, validate_agent_name
from hyperhive.hive.paths import Paths

GOOD = ["a", "alice", "web-1", "x" * 31, "hm1nd", "a-b-c-9"]
BAD = [
    "",
    "A",
    "Alice",
    "1abc",
    "-a",
    "a_b",
    "a.b",
    "a/b",
    "../etc",
    "..",
    ".",
    "a b",
    "a\x00b",
    "a\n",
    "x" * 32,
    "ä",
    "system",
    "operator",
    "a-",
    "a--b",
    "web--1",
    "x" * 30 + "-",
]


@pytest.mark.parametrize("name", GOOD)
def test_good_names_pass(name: str) -> None:
    assert validate_agent_name(name) == name


@pytest.mark.parametrize("name", BAD)
def test_bad_names_refused_with_a_sentence(name: str) -> None:
    with pytest.raises(InvalidName) as e:
        validate_agent_name(name)
    assert "agent name" in str(e.value)


@pytest.mark.parametrize("value", [None, 3, b"alice", ["alice"]])
def test_non_strings_refused(value: object) -> None:
    with pytest.raises(InvalidName):
        validate_agent_name(value)


def test_manager_name_reserved_for_sub_agents() -> None:
    with pytest.raises(InvalidName, match="reserved for the manager"):
        validate_agent_name("hm1nd", allow_manager=False)


def test_machine_names() -> None:
    assert machine_name("alice") == "h-alice"
    assert machine_name("hm1nd") == "hm1nd"


def test_paths_default_to_the_seed_layout() -> None:
    p = Paths.from_env({})
    assert p.state_dir == Path("/var/lib/hyperhive")
    assert p.db == Path("/var/lib/hyperhive/hive.db")
    assert p.admin_socket == Path("/run/hyperhive/host.sock")
    assert p.manager_socket == Path("/run/hyperhive/manager/hive.sock")
    assert p.agent_socket("alice") == Path("/run/hyperhive/agents/alice/hive.sock")
    assert p.proposed_repo("alice") == Path("/var/lib/hyperhive/agents/alice/config")
    assert p.agent_state("alice") == Path("/var/lib/hyperhive/agent-state/alice")
    assert p.legacy_agent_state("alice") == Path("/var/lib/hyperhive/agents/alice/state")
    assert p.applied_repo("alice") == Path("/var/lib/hyperhive/applied/alice")
    assert p.rev_marker("alice") == Path("/var/lib/hyperhive/applied/.alice.hyperhive-rev")


def test_paths_move_with_the_environment(tmp_path: Path) -> None:
    p = Paths.from_env(
        {"HIVE_STATE_DIR": str(tmp_path / "s"), "HIVE_RUNTIME_DIR": str(tmp_path / "r")}
    )
    assert p.db == tmp_path / "s" / "hive.db"
    assert p.admin_socket == tmp_path / "r" / "host.sock"
    assert Paths.from_env({"HIVE_DB": "/x/y.db"}).db == Path("/x/y.db")


def test_manager_socket_is_its_own() -> None:
    p = Paths.from_env({})
    assert p.socket_of("hm1nd") == p.manager_socket
    assert p.socket_of("bob") == p.agent_socket("bob")
    with pytest.raises(InvalidName):
        p.agent_socket("hm1nd")


@pytest.mark.parametrize("name", ["../../etc", "a/../b", "/abs", "x\x00"])
@pytest.mark.parametrize(
    "builder",
    [
        "agent_socket",
        "agent_dir",
        "proposed_repo",
        "agent_state",
        "legacy_agent_state",
        "applied_repo",
        "rev_marker",
    ],
)
def test_no_path_from_a_bad_name(name: str, builder: str) -> None:
    with pytest.raises(InvalidName):
        getattr(Paths.from_env({}), builder)(name)
