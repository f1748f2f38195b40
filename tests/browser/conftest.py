"""Browser fixtures: Debian's chromium driven by Playwright, against a real hive and hive-web."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.webtest import CHROMIUM, RunningWeb, launch_chromium
from tests.browser.webtest import private_journal as private_journal  # the shared fixture
from tests.hivetest import RunningHive

os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")  # never download a browser


@pytest.fixture(scope="session")
def playwright_driver() -> Iterator[Any]:
    """Playwright's driver, once per session (a thread may run only one)."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: scripts/bootstrap installs Debian's chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed: pip install -e '.[test]'")
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="session")
def browser_context(playwright_driver: Any) -> Iterator[Any]:
    profile = tempfile.mkdtemp(prefix="hive-chromium-")
    context = launch_chromium(playwright_driver, profile, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    yield context
    context.close()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def fresh_context(playwright_driver: Any) -> Iterator[Any]:
    """A browser that never signed in: a profile of its own, no cookies, no storage (a phone
    opening a link from a notification)."""
    profile = tempfile.mkdtemp(prefix="hive-chromium-fresh-")
    context = launch_chromium(playwright_driver, profile, viewport={"width": 420, "height": 900})
    context.set_default_timeout(10_000)
    yield context
    context.close()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def web(hive: RunningHive, env: dict[str, str]) -> Iterator[RunningWeb]:
    running = RunningWeb(env)
    yield running
    running.stop()


@pytest.fixture
def page(browser_context: Any, web: RunningWeb) -> Iterator[Any]:
    p = browser_context.new_page()
    errors: list[str] = []
    p.on("pageerror", lambda e: errors.append(str(e)))
    web.sign_in(p)
    yield p
    p.close()
    assert errors == [], f"javascript errors on the page: {errors}"
