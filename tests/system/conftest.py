"""System-test fixtures: one booted sandbox host with the hive installed, per test module,
and the one guard every system test shares: it needs root and systemd-nspawn."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from tests.system.hivehost import HiveHost, booted_hive


def sandbox_unavailable() -> str | None:
    """Why a sandbox systemd host cannot be booted here, or None when it can."""
    if os.geteuid() != 0:
        return "system tests boot a sandbox systemd host with systemd-nspawn: run them as root"
    if shutil.which("systemd-nspawn") is None:
        return "systemd-nspawn is missing: scripts/bootstrap installs it (systemd-container)"
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Before any fixture boots a host: skip with the reason (a failure under HIVE_CI=1)."""
    why = sandbox_unavailable()
    if why is not None:
        pytest.skip(why)


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HiveHost]:
    """The hive under systemd, agents in nspawn containers whose payload just sleeps."""
    with booted_hive(
        tmp_path_factory.mktemp("hivehost"),
        settings={"HIVE_AGENT_COMMAND": "/bin/sleep infinity"},
    ) as h:
        yield h
