"""Shared fixtures: a hive environment per test, a real coordinator process, and the real
coordinator inside the test process (`inproc`, for flow tests)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.hivetest import RunningHive, hive_env, reap_agents
from tests.inproc import InProcessHive

# pytester drives the skip guard's own tests; the guard: a skip fails under HIVE_CI=1.
pytest_plugins = ["pytester", "tests.skipguard"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        tier = Path(str(item.fspath)).parent.name
        if tier in ("unit", "integration", "system", "browser"):
            item.add_marker(getattr(pytest.mark, tier))


@pytest.fixture
def env(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """A hive's environment; a test that also uses the fake Messages API (`fake`) gets a
    coordinator that runs the model gateway in front of it, holding its key."""
    api = {}
    if "fake" in request.fixturenames:
        fake = request.getfixturevalue("fake")
        api = {"ANTHROPIC_BASE_URL": fake.url, "ANTHROPIC_API_KEY": fake.api_key}
    e = hive_env(tmp_path, **api)
    yield e
    reap_agents(e["HIVE_RUNTIME_DIR"])  # nothing a test started outlives it
    shutil.rmtree(e["HIVE_RUNTIME_DIR"], ignore_errors=True)


@pytest.fixture
def hive(env: dict[str, str]) -> Iterator[RunningHive]:
    running = RunningHive(env)
    yield running
    running.stop()


@pytest.fixture
def inproc(env: dict[str, str]) -> Iterator[InProcessHive]:
    """The coordinator in this process, driven through its dispatcher; stopped with its agents."""
    with InProcessHive(env) as hive:
        yield hive
