"""System-test fixtures: one booted sandbox host with the hive installed, per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.system.hivehost import HiveHost, booted_hive


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HiveHost]:
    """The hive under systemd, agents in nspawn containers whose payload just sleeps."""
    with booted_hive(
        tmp_path_factory.mktemp("hivehost"),
        settings={"HIVE_AGENT_COMMAND": "/bin/sleep infinity"},
    ) as h:
        yield h
