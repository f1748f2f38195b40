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
def browser_context() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: scripts/bootstrap installs Debian's chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed: pip install -e '.[test]'")
    profile = tempfile.mkdtemp(prefix="hive-chromium-")
    with sync_playwright() as pw:
        context = launch_chromium(pw, profile, viewport={"width": 1280, "height": 900})
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
