"""The dashboard in Debian's chromium (Playwright) against a real coordinator and hive-web."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.browser.webtest import PrivateJournal, RunningWeb
from tests.hivetest import RunningHive, hivectl, spawn
from tests.integration.flowtools import commit_file, config_text


def admin(hive: RunningHive, cmd: str, **fields: Any) -> dict[str, Any]:
    with hive.admin() as a:
        return a.call(cmd, **fields)


def manager(hive: RunningHive, cmd: str, **fields: Any) -> dict[str, Any]:
    with hive.manager() as m:
        return m.call(cmd, **fields)


def request_apply(hive: RunningHive, name: str, extra: str) -> int:
    sha = commit_file(
        hive.paths.proposed_repo(name), "agent.toml", config_text(extra), f"change {name}"
    )
    return int(manager(hive, "request_apply_commit", agent=name, commit_ref=sha)["id"])


def open_live(page: Any, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("#live[data-state=live]")


def toast(page: Any, text: str) -> None:
    page.locator(".toast", has_text=text).first.wait_for()


def test_approve_and_deny_keep_half_typed_text(
    hive: RunningHive, web: RunningWeb, page: Any
) -> None:
    spawn(hive, "alice")
    first = request_apply(hive, "alice", 'model = "claude-sonnet-4-5"\n')
    second = request_apply(hive, "alice", 'model = "claude-opus-4-1"\n')
    open_live(page, web.base + "/")
    note = page.locator(f"#approval-{second} input[name=note]")
    note.click()
    note.type("too big a model for a linter")
    # a change lands while the operator types: the row updates, the text and focus stay
    third = request_apply(hive, "alice", 'model = "claude-haiku-4-5"\n')
    page.locator(f"#approval-{third}").wait_for()
    assert note.input_value() == "too big a model for a linter"
    assert page.evaluate("document.activeElement.name") == "note"
    page.locator(f"#approval-{first} button.approve").click()
    toast(page, f"approval #{first} approved")
    page.locator(f"#approval-{first}").wait_for(state="detached")
    page.locator(f"#decision-{first} .badge-approved").wait_for()
    # second was made against the config first replaced: it turns stale, live, and the
    # note typed into it survives that
    page.locator(f"#approval-{second} .stale-note").wait_for(state="visible")
    assert page.locator(f"#approval-{second} button.approve").is_disabled()
    assert note.input_value() == "too big a model for a linter"
    page.locator(f"#approval-{second} button", has_text="DENY").click()
    toast(page, f"approval #{second} denied")
    page.locator(f"#approval-{second}").wait_for(state="detached")
    rows = {a["id"]: a for a in admin(hive, "pending", all=True)["approvals"]}
    assert rows[second]["status"] == "denied"
    assert rows[second]["note"] == "too big a model for a linter"
    assert page.locator("[data-count=approvals]").first.inner_text() == "1"


def test_spawn_approval_shows_a_spinner_until_spawned(
    hive: RunningHive, web: RunningWeb, page: Any
) -> None:
    aid = manager(hive, "request_spawn", name="carol")["id"]
    open_live(page, web.base + "/")
    page.evaluate(
        """(aid) => { window.spun = false;
        new MutationObserver(() => {
          if (document.querySelector(`#approval-${aid} .spinner, #agent-carol .badge.busy`))
            window.spun = true;
        }).observe(document.body, {subtree: true, childList: true, attributes: true}); }""",
        aid,
    )
    page.locator(f"#approval-{aid} button.approve").click()
    page.locator("#agent-carol .badge-running").wait_for()
    page.locator(f"#approval-{aid}").wait_for(state="detached")
    assert page.evaluate("window.spun") is True
    page.locator(".note-chip", has_text="spawn of carol: ok").wait_for()


def test_questions_answer_cancel_and_a_live_ttl_chip(
    hive: RunningHive, web: RunningWeb, page: Any
) -> None:
    pick = manager(hive, "ask_operator", question="which one?", options=["red", "blue"])["id"]
    free = manager(hive, "ask_operator", question="why?", ttl_seconds=90)["id"]
    drop = manager(hive, "ask_operator", question="still needed?")["id"]
    open_live(page, web.base + "/")
    chip = page.locator(f"#question-{free} .chip.ttl")
    first = chip.inner_text()
    assert first.startswith("◷ 01:") and first <= "◷ 01:30"
    page.wait_for_function(  # until the chip has ticked (it counts once a second)
        "([sel, first]) => document.querySelector(sel).innerText !== first",
        arg=[f"#question-{free} .chip.ttl", first],
        timeout=30_000,
    )
    later = chip.inner_text()
    assert later < first, (first, later)  # counting down
    page.locator(f"#question-{pick} label", has_text="blue").click()
    page.locator(f"#question-{pick} button.approve").click()
    toast(page, f"question #{pick} answered")
    page.locator(f"#question-{free} textarea").fill("because the build is red")
    page.locator(f"#question-{free} button.approve").click()
    toast(page, f"question #{free} answered")
    cancel = page.locator(f"#question-{drop} button", has_text="CANC3L")
    cancel.click()
    assert cancel.inner_text() == "sure? CANC3L"  # destructive: asks once
    cancel.click()
    toast(page, f"question #{drop} cancelled")
    page.locator(".question").first.wait_for(state="detached")
    got = {q["id"]: q["answer"] for q in admin(hive, "questions", all=True)["questions"]}
    assert got == {pick: "blue", free: "because the build is red", drop: "[cancelled]"}


def test_a_question_expires_on_the_page(hive: RunningHive, web: RunningWeb, page: Any) -> None:
    qid = manager(hive, "ask_operator", question="quick?", ttl_seconds=2)["id"]
    open_live(page, web.base + "/")
    page.locator(f"#question-{qid} .chip.ttl.soon").wait_for()
    page.locator(f"#question-{qid}").wait_for(state="detached", timeout=60_000)
    assert admin(hive, "questions", all=True)["questions"][0]["answer"] == "[expired]"


def test_model_slash_command_and_chat(hive: RunningHive, web: RunningWeb, page: Any) -> None:
    spawn(hive, "alice")
    open_live(page, web.base + "/agent/alice")
    chat = page.locator("form.chat textarea")
    chat.fill("/model claude-opus-4-1")
    chat.press("Enter")
    toast(page, "alice now uses claude-opus-4-1")
    page.locator("#state-alice .chip.model", has_text="claude-opus-4-1").wait_for()
    assert admin(hive, "agent_status", name="alice")["agents"][0]["model"] == "claude-opus-4-1"
    assert chat.input_value() == ""  # a command that worked leaves the box empty
    chat.fill("/model")
    chat.press("Enter")
    toast(page, "alice uses claude-opus-4-1")
    page.wait_for_function("() => document.querySelector('form.chat textarea').value === ''")
    chat.fill("hello alice")
    page.locator("form.chat button").click()
    toast(page, "sent to alice")
    page.locator(".msg.operator .body", has_text="hello alice").wait_for()
    assert chat.input_value() == ""


def test_agent_written_markup_is_shown_as_text(
    hive: RunningHive, web: RunningWeb, page: Any
) -> None:
    spawn(hive, "alice")
    evil = "<script>window.pwned=1</script><img src=x onerror=window.pwned=2>"
    admin(hive, "send", to="alice", body=evil)
    open_live(page, web.base + "/agent/alice")
    with hive.agent("alice") as a:
        a.call("send", to="hm1nd", body="<b>live</b> " + evil)
    page.locator(".msg .body", has_text="<b>live</b>").wait_for()
    bodies = page.locator(".msg .body").all_inner_texts()
    assert bodies == [evil, "<b>live</b> " + evil]
    assert page.evaluate("window.pwned") is None
    assert page.locator(".msg img, .msg script, .msg b").count() == 0


def test_cancel_turn_and_kill_ask_once(hive: RunningHive, web: RunningWeb, page: Any) -> None:
    spawn(hive, "alice")
    open_live(page, web.base + "/")
    with hive.agent("alice") as a:
        a.call("set_turn_state", state="thinking", started_at=time.time() - 5)
    cancel = page.locator("#agent-alice button", has_text="✗ cancel")
    cancel.wait_for()
    page.locator("#agent-alice .chip.turn.running").wait_for()
    cancel.click()
    toast(page, "cancel sent to alice")
    kill = page.locator("#agent-alice button", has_text="k1ll")
    kill.click()
    assert kill.inner_text() == "sure? K1LL"
    assert admin(hive, "agent_status", name="alice")["agents"][0]["state"] == "running"
    kill.click()
    toast(page, "alice killed")
    page.locator("#agent-alice .badge-stopped").wait_for()


def test_notification_row_and_browser_notification(
    hive: RunningHive, web: RunningWeb, browser_context: Any
) -> None:
    browser_context.grant_permissions(["notifications"], origin=web.base)
    page = browser_context.new_page()
    web.sign_in(page)
    page.add_init_script(
        """window.shown = [];
        window.Notification = class {
          constructor(title, opts) { window.shown.push([title, opts.body]); }
          static get permission() { return 'granted'; }
          static requestPermission() { return Promise.resolve('granted'); }
        };
        Object.defineProperty(document, 'hidden', {get: () => window.pretendHidden === true});"""
    )
    try:
        open_live(page, web.base + "/")
        qid = manager(hive, "ask_operator", question="visible?")["id"]
        page.locator(".note-chip.unseen", has_text=f"question #{qid} from hm1nd").wait_for()
        assert page.evaluate("window.shown") == []  # the tab is visible: no popup
        page.evaluate("window.pretendHidden = true")
        spawn(hive, "crashy")
        page.wait_for_function("() => window.shown.length > 0")
        assert ["hyperhive · spawned", "spawn of crashy: ok"] in page.evaluate("window.shown")
        page.locator("#notes-seen").click()
        assert page.locator(".note-chip.unseen").count() == 0
    finally:
        page.close()


class _Attacker(BaseHTTPRequestHandler):
    target = ""

    def do_GET(self) -> None:
        body = (
            f'<form id="f" method="post" action="{self.target}/send/alice">'
            '<input name="body" value="from evil"><input name="csrf" value="guess"></form>'
            "<script>document.getElementById('f').submit()</script>"
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def attacker(web: RunningWeb) -> Iterator[str]:
    handler = type("Handler", (_Attacker,), {"target": web.base})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://localhost:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_a_cross_site_post_is_refused(
    hive: RunningHive, web: RunningWeb, page: Any, attacker: str
) -> None:
    spawn(hive, "alice")
    open_live(page, web.base + "/")  # the operator has the dashboard's cookies
    with page.expect_response(lambda r: r.url.endswith("/send/alice")) as sent:
        page.goto(attacker)
    assert sent.value.status == 403
    assert "cross-site request refused" in json.loads(sent.value.text())["message"]
    with hive.agent("alice") as a:
        assert a.call("recv", wait_seconds=0.5)["message"] is None


def test_journal_viewer_streams_a_new_line(
    hive: RunningHive, env: dict[str, str], browser_context: Any, private_journal: PrivateJournal
) -> None:
    spawn(hive, "alice")
    private_journal.send("an older line", HIVE_AGENT="alice", SYSLOG_IDENTIFIER="hive-agent")
    web = RunningWeb(env, HIVE_WEB_JOURNAL_NAMESPACE=private_journal.namespace)
    page = browser_context.new_page()
    try:
        web.sign_in(page)
        page.goto(web.base + "/agent/alice")
        page.locator("#journal .jmsg", has_text="an older line").wait_for()
        page.wait_for_selector("#journal[data-following]")
        private_journal.send(
            "<i>a new line</i> for alice", HIVE_AGENT="alice", SYSLOG_IDENTIFIER="hive-coordinator"
        )
        line = page.locator("#journal .jl", has_text="<i>a new line</i> for alice")
        line.wait_for()
        assert line.locator(".jid").inner_text() == "hive-coordinator"
        assert page.locator("#journal i").count() == 0
    finally:
        page.close()
        web.stop()


def test_the_operators_whole_path_login_link_then_approve(
    hive: RunningHive, web: RunningWeb, browser_context: Any, env: dict[str, str]
) -> None:
    spawn(hive, "alice")
    approval = request_apply(hive, "alice", 'model = "claude-opus-4-1"\n')
    page = browser_context.new_page()
    try:
        browser_context.clear_cookies()  # a browser that never signed in
        page.goto(web.base + "/")
        assert page.url == web.base + "/login"
        assert "hivectl login" in page.locator("main").inner_text()
        assert page.locator(f"#approval-{approval}").count() == 0
        out = hivectl(env, "login")  # the operator, on the host
        assert out.returncode == 0, out.stderr
        url = out.stdout.split()[-1]
        web.sign_in(page, url)
        page.wait_for_selector("#live[data-state=live]")
        page.locator(f"#approval-{approval} button.approve").click()
        toast(page, f"approval #{approval} approved")
        row = next(a for a in admin(hive, "pending", all=True)["approvals"] if a["id"] == approval)
        assert row["status"] in ("applying", "approved")
        assert row["decided_by"].startswith("dashboard session #")
        page.locator("form.signout button").click()
        page.wait_for_url(web.base + "/login")
        page.goto(web.base + "/")
        assert page.url == web.base + "/login"  # signed out means out
    finally:
        page.close()


def test_many_notes_fit_without_a_scrollbar(hive: RunningHive, web: RunningWeb, page: Any) -> None:
    spawn(hive, "alice")
    for _ in range(3):  # notes of every length: the row shows the newest that fit
        admin(hive, "kill", name="alice")
        admin(hive, "start", name="alice")
    with hive.agent("alice") as a:
        for i in range(12):
            a.call("ask_operator", question=f"question {i} " + "with a long text " * 8)
    open_live(page, web.base + "/")
    page.locator(".note-chip").nth(10).wait_for(state="attached")
    overflow = page.evaluate(
        """[...document.querySelectorAll('.notes, .notes-list, body')].map(
             (e) => e.scrollWidth - e.clientWidth)"""
    )
    assert overflow == [0, 0, 0], overflow
    assert page.evaluate("document.querySelector('.notes-list').scrollHeight") > 0


def test_the_waiting_count_is_live_in_the_header_and_the_title(
    hive: RunningHive, web: RunningWeb, page: Any
) -> None:
    spawn(hive, "alice")
    open_live(page, web.base + "/")
    assert page.locator('header [data-count="waiting"]').inner_text() == "0"
    assert "waiting" not in page.title()
    with hive.agent("alice") as a:
        a.call("ask_operator", question="may I?", options=["yes", "no"])
    page.wait_for_function(
        "() => document.querySelector('header [data-count=waiting]').textContent === '1'"
    )
    page.locator("#agent-alice[data-status=waiting_operator]").wait_for()
    page.wait_for_function("() => document.title.startsWith('(1 waiting')")
    page.locator('header a[href="/waiting"]').click()
    page.wait_for_url(web.base + "/waiting")
    page.locator(".question").first.wait_for()
