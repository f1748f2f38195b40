"""Spending caps in Debian's chromium: an agent driven over its daily cap by the fake Messages
API shows `over_budget` on its page; the operator raises the cap there and the badge leaves
`over_budget` through the live update, with no reload."""

from __future__ import annotations

from typing import Any

from tests.browser.webtest import RunningWeb
from tests.fakeapi import FakeAnthropic, text
from tests.fakeapi.harness import fake_api  # noqa: F401 - the pytest fixture `fake`
from tests.hivetest import RunningHive, spawn, wait_serving
from tests.integration.test_gateway import ask, client, set_cap


def test_the_operator_raises_a_cap_on_the_agent_page_and_the_badge_leaves_over_budget(
    hive: RunningHive, web: RunningWeb, page: Any, fake: FakeAnthropic
) -> None:
    spawn(hive, "alice")
    set_cap(hive, "alice", 0.00001, period="daily")
    fake.script(text("the last one under the cap"))
    ask(client(hive, "alice"))
    assert wait_serving(hive.paths, "alice").over_budget
    page.goto(web.base + "/agent/alice")
    page.wait_for_selector("#live[data-state=live]")
    page.locator("#state-alice[data-status=over_budget]").wait_for()
    row = page.locator("#budget-alice-daily")
    assert row.get_attribute("data-over") == "yes" and "at cap" in row.inner_text()
    page.wait_for_function(  # the header counts the agent at its cap as waiting
        "() => document.querySelector('header [data-count=waiting]').textContent === '1'"
    )

    row.locator("form.set-cap input[name=usd]").fill("25")
    row.locator("form.set-cap button[type=submit]").click()
    page.locator(".toast", has_text="alice's daily cap is $25.00 (operator)").first.wait_for()
    page.locator("#state-alice[data-status=running]").wait_for()  # pushed, not reloaded
    page.locator("#budget-alice-daily[data-over=no]").wait_for()
    assert "operator" in page.locator("#budget-alice-daily .source").inner_text()
    page.wait_for_function(
        "() => document.querySelector('header [data-count=waiting]').textContent === '0'"
    )
    assert hive.admin("budget", name="alice")["over"] is None
