"""Action links in Debian's chromium, from a real notification: a real coordinator, hive-web and
hive-notify, whose message reaches a local receiver; the link in it is opened in a browser
that never signed in, as a phone would."""

from __future__ import annotations

import http.client
import sqlite3
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest

from tests.browser.webtest import RunningWeb
from tests.hivetest import RunningHive, free_port, running_hive, spawn
from tests.integration.flowtools import commit_file, config_text
from tests.notifytest import FAST, Receiver, receiver, running_notify


class Linked:
    def __init__(self, hive: RunningHive, web: RunningWeb, rx: Receiver) -> None:
        self.hive = hive
        self.web = web
        self.rx = rx

    def request_apply(self, extra: str) -> tuple[int, bytes]:
        blob = config_text(extra)
        repo = self.hive.paths.proposed_repo("alice")
        sha = commit_file(repo, "agent.toml", blob, "change alice")
        with self.hive.manager() as m:
            return int(m.call("request_apply_commit", agent="alice", commit_ref=sha)["id"]), blob

    def link_for(self, aid: int) -> str:
        """The action link of approval `aid`, from the notification that reached the receiver."""
        return self.rx.having(f"approval #{aid}").link_of(f"approval #{aid}")

    def sql(self, query: str, *args: Any) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.hive.paths.db) as db:
            return list(db.execute(query, args))

    def approval(self, aid: int) -> dict[str, Any]:
        with self.hive.admin() as a:
            rows = a.call("pending", all=True)["approvals"]
        return dict(next(r for r in rows if r["id"] == aid))

    def plain(self, method: str, url: str, body: bytes | None = None, **headers: str) -> Any:
        """A plain HTTP client (no cookies, no browser): what a link preview or prefetcher is."""
        parts = urlsplit(url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        try:
            conn.request(method, parts.path, body=body, headers={"Host": parts.netloc, **headers})
            resp = conn.getresponse()
            return resp.status, resp.read().decode()
        finally:
            conn.close()


@pytest.fixture
def linked(env: dict[str, str]) -> Iterator[Linked]:
    port = free_port()
    with receiver() as rx:
        e = {
            **env,
            **FAST,
            "HIVE_WEB_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "HIVE_NOTIFY_URLS": rx.json_url(),
        }
        with running_hive(e) as hive:
            web = RunningWeb(e, port=port)
            try:
                with running_notify(e):
                    spawn(hive, "alice")
                    yield Linked(hive, web, rx)
            finally:
                web.stop()


def open_link(context: Any, url: str) -> Any:
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    page.errors = errors
    return page


def test_a_link_approves_exactly_its_diff_once_and_a_get_never_acts(
    linked: Linked, fresh_context: Any
) -> None:
    aid, blob = linked.request_apply('model = "claude-opus-4-1"\n')
    url = linked.link_for(aid)

    # a link preview, a prefetcher, a scanner: GET and HEAD show the page and change nothing
    for method in ("GET", "HEAD", "GET"):
        status, body = linked.plain(method, url)
        assert status == 200
        if method == "GET":
            assert "APPR0VE" in body and "claude-opus-4-1" in body
    assert linked.approval(aid)["status"] == "pending"
    assert linked.sql("SELECT used_at FROM action_links") == [(None,)]

    page = open_link(fresh_context, url)
    assert not [c for c in fresh_context.cookies() if c["name"] == "hive_session"]
    page.locator("#act-state[data-state=open]").wait_for()
    assert '+model = "claude-opus-4-1"' in page.locator("pre.diff").inner_text()
    token = page.locator("form.act-approve input[name=csrf]").get_attribute("value")
    page.locator("form.act-approve button").click()
    page.locator("#act-done", has_text=f"approval #{aid} approved").wait_for()

    deadline = time.monotonic() + 30
    while linked.approval(aid)["status"] == "applying" and time.monotonic() < deadline:
        time.sleep(0.05)
    row = linked.approval(aid)
    assert row["status"] == "approved"
    lid = linked.sql("SELECT id FROM action_links")[0][0]
    assert str(row["decided_by"]).startswith(f"action link #{lid} (json)")
    applied = (linked.hive.paths.applied_repo("alice") / "agent.toml").read_bytes()
    assert applied == blob  # exactly the diff the link was made for

    # the second time: the page says it was used, and a replayed POST is refused
    again = open_link(fresh_context, url)
    again.locator("#act-state[data-state=used]").wait_for()
    assert again.locator("form").count() == 0
    assert "used already" in again.locator("#act-state").inner_text()
    origin = f"{urlsplit(url).scheme}://{urlsplit(url).netloc}"
    status, body = linked.plain(
        "POST",
        url,
        urlencode({"csrf": token, "action": "approve"}).encode(),
        **{"Content-Type": "application/x-www-form-urlencoded", "Origin": origin},
    )
    assert status == 409 and "used already" in body
    assert page.errors == [] and again.errors == []


def test_a_link_for_an_approval_that_went_stale_is_refused(
    linked: Linked, fresh_context: Any
) -> None:
    first, _ = linked.request_apply('model = "claude-sonnet-4-5"\n')
    second, _ = linked.request_apply('model = "claude-opus-4-1"\n')
    url = linked.link_for(second)
    with linked.hive.admin() as a:  # the first is approved on the dashboard: second is stale
        a.call("approve", id=first)
    page = open_link(fresh_context, url)
    page.locator("#act-state[data-state=stale]").wait_for()
    assert page.locator("form.act-approve button").is_disabled()
    # a disabled button stops no one who posts the form anyway: the coordinator refuses it
    with page.expect_navigation() as nav:
        page.evaluate("document.querySelector('form.act-approve').submit()")
    assert nav.value.status == 409
    assert "is stale" in page.locator("#act-error").inner_text()
    assert linked.approval(second)["status"] == "stale"
    applied = (linked.hive.paths.applied_repo("alice") / "agent.toml").read_bytes()
    assert b"claude-sonnet-4-5" in applied and b"claude-opus-4-1" not in applied
    assert page.errors == []
