"""Stale approvals, end to end: the manager asks for two changes made from the same applied
config, the operator approves the first, and the second can no longer be applied.

Before: approving B after A applied B's bytes, silently reverting A, while B's diff (computed
against the config before A) still showed only B's own change.
"""

from __future__ import annotations

import json
import time

import git
from hyperhive.hive.client import Refused

from tests.browser.webtest import RunningWeb, SSEReader
from tests.hivetest import Hive, RunningHive, hivectl, running_hive, spawn
from tests.inproc import InProcessHive
from tests.integration.flowtools import commit_file, config_text, manager_events


def request(hive: Hive, name: str, extra: str, message: str) -> tuple[int, str]:
    sha = commit_file(hive.paths.proposed_repo(name), "agent.toml", config_text(extra), message)
    return int(hive.manager("request_apply_commit", agent=name, commit_ref=sha)["id"]), sha


def pending(hive: Hive) -> dict[int, dict[str, object]]:
    return {r["id"]: r for r in hive.admin("pending", all=True)["approvals"]}


def stale_card_pushed(sse: SSEReader, aid: int, timeout: float = 20) -> str:
    """Read the dashboard's live stream until the card of approval `aid` comes marked stale."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        _, data = sse.event(timeout=left)
        html = json.loads(data).get("sections", {}).get("approvals", {}).get("html", {})
        card = html.get(f"approval-{aid}", "")
        if "stale" in card:
            return str(card)
    raise AssertionError(f"approval #{aid} was never pushed as stale")


def test_b_after_a_is_refused_as_stale_and_marked_before_anyone_clicks(
    hive: RunningHive, env: dict[str, str]
) -> None:
    spawn(hive, "alice")
    manager_events(hive)
    base = str(git.Repo(hive.paths.applied_repo("alice")).head.commit.hexsha)
    a_id, _ = request(hive, "alice", 'model = "model-a"\n', "A: pick a model")
    # B is made from the same proposed parent as A: its diff cannot know about A.
    b_id, b_sha = request(hive, "alice", '[environment]\nB = "yes"\n', "B: an environment")
    rows = pending(hive)
    assert rows[a_id]["base_commit"] == rows[b_id]["base_commit"] == base
    assert rows[a_id]["stale"] is False and rows[b_id]["stale"] is False

    web = RunningWeb(env)
    sse = None
    try:
        c = web.client()
        assert "disabled" not in c.get("/").text.split(f'id="approval-{b_id}"', 1)[1][:2000]
        sse = SSEReader("127.0.0.1", web.port, "/api/events?topic=index", c.cookies)
        sse.event()  # the whole state first

        out = hivectl(hive.env, "approve", str(a_id))
        assert out.returncode == 0 and "approved" in out.stdout, out.stderr

        card = stale_card_pushed(sse, b_id)  # live, without a reload
        assert "approval stale" in card and "disabled" in card and "APPR0VE" in card
        page = c.get("/").text
        b_card = page.split(f'id="approval-{b_id}"', 1)[1].split("</article>", 1)[0]
        assert "st4le" in b_card and "disabled" in b_card
        assert 'class="card approval stale"' in page
        assert pending(hive)[b_id]["stale"] is True and pending(hive)[b_id]["status"] == "pending"
        assert "STALE" in hivectl(hive.env, "pending").stdout

        out = hivectl(hive.env, "approve", str(b_id))
        assert out.returncode == 1 and f"approval #{b_id} is stale" in out.stderr
        again = c.post(f"/approve/{b_id}")  # the dashboard, if someone forced the click
        assert again.status == 409 and "already stale" in again.json()["message"]
    finally:
        if sse is not None:
            sse.close()
        web.stop()

    config = (hive.paths.applied_repo("alice") / "agent.toml").read_bytes()
    assert b'model = "model-a"' in config and b"B = " not in config  # A kept, B never applied
    row = pending(hive)[b_id]
    assert row["status"] == "stale" and row["stale"] is True
    events = manager_events(hive)
    resolved = [e for e in events if e["event"] == "approval_resolved"]
    assert [(e["id"], e["status"]) for e in resolved] == [(a_id, "approved"), (b_id, "stale")]
    assert resolved[1]["commit_ref"] == b_sha
    assert "request it again" in str(resolved[1]["note"])
    assert base[:12] in str(resolved[1]["note"])


def test_two_approvals_approved_back_to_back_apply_only_one(inproc: InProcessHive) -> None:
    spawn(inproc, "alice")
    manager_events(inproc)
    a_id, _ = request(inproc, "alice", 'model = "model-a"\n', "A")
    b_id, _ = request(inproc, "alice", 'model = "model-b"\n', "B")
    with inproc.admin() as admin:
        admin.call("approve", id=a_id, wait=False)
        try:  # refused at once if A is already applied, else it loses under the lock
            admin.call("approve", id=b_id, wait=False)
        except Refused as e:
            assert "is stale" in str(e)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        rows = pending(inproc)
        if not {rows[a_id]["status"], rows[b_id]["status"]} & {"pending", "applying"}:
            break
        time.sleep(0.2)
    assert (rows[a_id]["status"], rows[b_id]["status"]) == ("approved", "stale")
    config = (inproc.paths.applied_repo("alice") / "agent.toml").read_bytes()
    assert b'model = "model-a"' in config


def test_a_stale_approval_stays_marked_across_a_restart(env: dict[str, str]) -> None:
    with running_hive(env) as hive:
        spawn(hive, "alice")
        a_id, _ = request(hive, "alice", 'model = "model-a"\n', "A")
        b_id, _ = request(hive, "alice", 'model = "model-b"\n', "B")
        with hive.admin() as a:
            a.call("approve", id=a_id)
    with running_hive(env) as hive:
        assert pending(hive)[b_id]["stale"] is True
        with hive.admin() as a:
            a.call("deny", id=b_id, note="superseded")  # deny stays possible
        assert pending(hive)[b_id]["status"] == "denied"
