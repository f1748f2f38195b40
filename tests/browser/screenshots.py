"""Screenshots of the dashboard for docs/web-ui.md: `python -m tests.browser.screenshots`.

Starts a real coordinator and hive-web on a temp dir, gives them a small hive with
approvals, questions, messages, a running turn and (as root) a private journald with a
few lines, and writes docs/img/web-*.png with Debian's chromium.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

from tests.browser.webtest import PrivateJournal, RunningWeb, launch_chromium
from tests.hivetest import REPO, RunningHive, hive_env
from tests.integration.flowtools import commit_file

IMG = REPO / "docs" / "img"


def populate(hive: RunningHive) -> None:
    with hive.admin() as a:
        for name in ("alice", "bob", "carol"):
            a.call("spawn", name=name)
        a.call("send", to="alice", body="please review PR #12 <script>alert(1)</script>")
        a.call("stop", name="carol")
        a.call("set_model", name="bob", model="claude-opus-4-1")
    with hive.agent("alice") as al:
        al.call(
            "set_turn_state",
            state="tool",
            tool="shell",
            detail="pytest -q tests/unit",
            started_at=time.time() - 42,
            input_tokens=12000,
            output_tokens=800,
            cost_usd=0.07,
        )
        al.call("send", to="hm1nd", body="done with the review: two nits, one bug in parse()")
    with hive.agent("bob") as b:
        b.call(
            "set_turn_state",
            state="idle",
            started_at=time.time() - 400,
            ended_at=time.time() - 380,
            input_tokens=3000,
            output_tokens=200,
        )
    repo = hive.paths.proposed_repo("alice")
    sha = commit_file(
        repo,
        "agent.toml",
        b'system_prompt = "you review pull requests"\n'
        b'packages = ["ripgrep"]\nmodel = "claude-sonnet-4-5"\n',
        "alice: ripgrep",
    )
    hive.paths.rev_marker("bob").write_text("old\n")
    with hive.manager() as m:
        m.call("request_apply_commit", agent="alice", commit_ref=sha)
        m.call("request_spawn", name="dave")
        m.call(
            "ask_operator",
            question="may alice install ripgrep and jq?",
            options=["yes", "only ripgrep", "no"],
            ttl_seconds=300,
        )
        m.call(
            "ask_operator",
            question="which repos should dave watch?",
            options=["hyperhive", "docs", "infra"],
            multi=True,
        )
        m.call("ask_operator", question="what should dave's role be?")


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="hive-shots-"))
    env = hive_env(root)
    hive = RunningHive(env)
    journal = PrivateJournal() if PrivateJournal.unavailable() is None else None
    extra = {"HIVE_WEB_JOURNAL_NAMESPACE": journal.namespace} if journal else {}
    web = None
    try:
        populate(hive)
        if journal is not None:
            for ident, line in (
                ("hive-coordinator", "alice created (operator spawn)"),
                ("hive-agent", "turn 14 started: 1 message from operator"),
                ("hive-agent", "tool shell: pytest -q tests/unit"),
                ("hive-coordinator", "message #9 from alice to hm1nd"),
            ):
                journal.send(line, HIVE_AGENT="alice", SYSLOG_IDENTIFIER=ident)
        web = RunningWeb(env, **extra)
        IMG.mkdir(parents=True, exist_ok=True)
        profile = tempfile.mkdtemp(prefix="hive-chromium-")
        with sync_playwright() as pw:
            ctx = launch_chromium(pw, profile, viewport={"width": 1200, "height": 1500})
            page = ctx.new_page()
            web.sign_in(page)
            page.goto(web.base + "/")
            page.wait_for_selector("#live[data-state=live]")
            page.locator("#approval-1 input[name=note]").fill("half-typed notes survive updates")
            time.sleep(0.5)
            page.screenshot(path=str(IMG / "web-dashboard.png"))
            page.goto(web.base + "/agent/alice")
            page.wait_for_selector("#live[data-state=live]")
            page.locator("form.chat textarea").fill("/model claude-opus-4-1")
            time.sleep(1.0)
            page.set_viewport_size({"width": 1200, "height": 760})
            page.screenshot(path=str(IMG / "web-agent.png"))
            ctx.close()
        shutil.rmtree(profile, ignore_errors=True)
    finally:
        if web is not None:
            web.stop()
        if journal is not None:
            journal.stop()
        hive.stop()
        shutil.rmtree(env["HIVE_RUNTIME_DIR"], ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)
    for png in sorted(IMG.glob("web-*.png")):
        print(png.relative_to(REPO), f"{png.stat().st_size // 1024} KiB")


if __name__ == "__main__":
    main()
