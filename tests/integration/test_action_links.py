"""Action links through the coordinator's dispatcher (`action_link`, `action_redeem`): each link
acts once, only on the item and the diff it was made for, only before it expires, and records
itself as who decided. Their pages in a browser: tests/browser/test_action_links_browser.py."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hyperhive.hive import actionlinks
from hyperhive.hive.client import Refused
from hyperhive.hive.db import ActionLink, Approval, database, now, open_db
from hyperhive.hive.vocab import Code, LinkState

from tests.browser.webtest import RunningWeb
from tests.hivetest import Hive, RunningHive, free_port, running_hive, spawn
from tests.inproc import InProcessHive
from tests.integration.flowtools import commit_file, config_text


@contextmanager
def hive_and_web(env: dict[str, str]) -> Iterator[tuple[RunningHive, RunningWeb]]:
    """A hive whose links name a hive-web on a port of its own, and that hive-web."""
    port = free_port()
    e = {**env, "HIVE_WEB_PUBLIC_URL": f"http://127.0.0.1:{port}"}
    with running_hive(e) as hive:
        web = RunningWeb(e, port=port)
        try:
            yield hive, web
        finally:
            web.stop()


@pytest.fixture
def linked(env: dict[str, str]) -> Iterator[InProcessHive]:
    with InProcessHive({**env, "HIVE_WEB_PUBLIC_URL": "https://hive.example.org"}) as hive:
        yield hive


def request(hive: Hive, name: str, extra: str) -> tuple[int, bytes]:
    blob = config_text(extra)
    sha = commit_file(hive.paths.proposed_repo(name), "agent.toml", blob, f"change {name}")
    return int(hive.manager("request_apply_commit", agent=name, commit_ref=sha)["id"]), blob


def link(hive: Hive, item: str, item_id: int, channel: str = "ntfy") -> tuple[int, str]:
    got = hive.admin("action_link", item=item, id=item_id, channel=channel, actor="hive-notify")
    url = str(got["url"])
    assert url.startswith(hive.env["HIVE_WEB_PUBLIC_URL"] + "/act/")
    return int(got["id"]), url.rsplit("/", 1)[1]


def redeem(hive: Hive, secret: str, action: str, **fields: object) -> dict[str, object]:
    token = fields.pop("token", actionlinks.form_token(secret))
    return hive.admin("action_redeem", secret=secret, token=token, action=action, **fields)


def approval(hive: Hive, aid: int) -> dict[str, Any]:
    return next(a for a in hive.admin("pending", all=True)["approvals"] if a["id"] == aid)


def refused(hive: Hive, secret: str, action: str, **fields: object) -> Refused:
    with pytest.raises(Refused) as said:
        redeem(hive, secret, action, **fields)
    return said.value


def test_a_link_approves_exactly_its_diff_once_and_names_itself(linked: InProcessHive) -> None:
    spawn(linked, "alice")
    aid, blob = request(linked, "alice", 'model = "claude-opus-4-1"\n')
    lid, secret = link(linked, "approval", aid, "ntfy")
    stored = ActionLink.get_by_id(lid)
    assert stored.token_hash == actionlinks.sessions.digest(secret)  # only its hash is kept
    assert secret not in str(list(database.execute_sql("SELECT * FROM action_links")))
    got = redeem(linked, secret, "approve")
    assert got["message"] == f"approval #{aid} approved"
    row = approval(linked, aid)
    deadline = time.monotonic() + 30
    while row["status"] == "applying" and time.monotonic() < deadline:  # applied in the back
        time.sleep(0.05)
        row = approval(linked, aid)
    assert row["status"] == "approved"
    assert str(row["decided_by"]).startswith(f"action link #{lid} (ntfy), uid ")
    applied = (linked.paths.applied_repo("alice") / "agent.toml").read_bytes()
    assert applied == blob  # exactly the bytes the link was made for
    again = refused(linked, secret, "approve")
    assert again.code is Code.CONFLICT and "used already" in str(again)
    trail = linked.admin("history", agent="alice")["decisions"]
    by_link = [d for d in trail if d["channel"] == "link"]  # type: ignore[index]
    assert len(by_link) == 1, trail  # the link's one decision; the refused reuse never acted
    assert by_link[0]["action"] == "approve" and by_link[0]["outcome"] == "ok"  # type: ignore[index]
    assert str(by_link[0]["actor"]).startswith(f"action link #{lid} (ntfy), uid ")  # type: ignore[index]


def test_a_wrong_token_or_action_does_not_spend_the_link(linked: InProcessHive) -> None:
    spawn(linked, "alice")
    aid, _ = request(linked, "alice", 'model = "claude-opus-4-1"\n')
    _, secret = link(linked, "approval", aid)
    bad = refused(linked, secret, "approve", token="0" * 64)
    assert bad.code is Code.FORBIDDEN and "token does not belong to this link" in str(bad)
    other = refused(linked, secret, "answer", answer="yes")
    assert other.code is Code.INVALID and "can approve or deny, not answer" in str(other)
    unknown = refused(linked, "x" * 43, "approve")
    assert unknown.code is Code.FORBIDDEN and "not one the hive made" in str(unknown)
    assert actionlinks.inspect(secret).state is LinkState.OPEN  # still usable
    got = redeem(linked, secret, "deny", note="not now")
    assert got["message"] == f"approval #{aid} denied"
    assert got["approval"]["note"] == "not now"  # type: ignore[index]


def test_a_stale_approval_or_another_diff_is_refused_through_its_link(
    linked: InProcessHive,
) -> None:
    spawn(linked, "alice")
    first, _ = request(linked, "alice", 'model = "claude-sonnet-4-5"\n')
    second, _ = request(linked, "alice", 'model = "claude-opus-4-1"\n')
    _, s_first = link(linked, "approval", first)
    _, s_second = link(linked, "approval", second)
    linked.admin("approve", id=first)  # the applied config moves: second is stale
    assert actionlinks.inspect(s_second).state is LinkState.STALE
    stale = refused(linked, s_second, "approve")
    assert stale.code is Code.STALE and "stale" in str(stale)
    assert approval(linked, second)["status"] == "stale"
    used = refused(linked, s_first, "approve")  # first was decided on the dashboard
    assert used.code is Code.CONFLICT and f"approval #{first} is already approved" in str(used)
    # a link is bound to the diff it was made for, not to the approval's number
    third, _ = request(linked, "alice", 'model = "claude-haiku-4-5"\n')
    _, s_third = link(linked, "approval", third)
    Approval.update(diff="+model = 'something else'\n").where(Approval.id == third).execute()
    changed = refused(linked, s_third, "approve")
    assert changed.code is Code.STALE and "not the diff this link was made for" in str(changed)
    assert approval(linked, third)["status"] == "pending"


def test_an_expired_link_and_a_link_for_a_decided_item_say_so(linked: InProcessHive) -> None:
    spawn(linked, "alice")
    aid, _ = request(linked, "alice", 'model = "claude-opus-4-1"\n')
    lid, secret = link(linked, "approval", aid)
    ActionLink.update(expires_at=now() - 1).where(ActionLink.id == lid).execute()
    late = refused(linked, secret, "approve")
    assert late.code is Code.FORBIDDEN and "expired" in str(late)
    linked.admin("deny", id=aid)
    with pytest.raises(Refused) as no_link:  # no link for what is decided already
        link(linked, "approval", aid)
    assert no_link.value.code is Code.CONFLICT


def test_a_question_link_answers_once_and_a_wrong_answer_keeps_it(
    linked: InProcessHive,
) -> None:
    qid = int(linked.manager("ask_operator", question="which?", options=["red", "blue"])["id"])
    lid, secret = link(linked, "question", qid, "json")
    wrong = refused(linked, secret, "answer", answer="green")
    assert wrong.code is Code.INVALID
    assert actionlinks.inspect(secret).state is LinkState.OPEN
    got = redeem(linked, secret, "answer", answer=["blue"])  # one box ticked on the page
    assert got["question"]["answer"] == "blue"  # type: ignore[index]
    assert str(got["question"]["decided_by"]).startswith(f"action link #{lid} (json)")  # type: ignore[index]
    again = refused(linked, secret, "answer", answer="red")
    assert again.code is Code.CONFLICT
    multi = int(
        linked.manager("ask_operator", question="which ones?", options=["a", "b", "c"], multi=True)[
            "id"
        ]
    )
    _, s_multi = link(linked, "question", multi)
    chosen = redeem(linked, s_multi, "answer", answer="b")  # one box of several
    assert chosen["question"]["answer"] == "b"  # type: ignore[index]


def test_the_page_refuses_cross_site_and_tokenless_posts_and_never_logs_a_secret(
    env: dict[str, str],
) -> None:
    with hive_and_web(env) as (hive, web):
        spawn(hive, "alice")
        aid, _ = request(hive, "alice", 'model = "claude-opus-4-1"\n')
        _, secret = link(hive, "approval", aid)
        path = f"/act/{secret}"
        client = web.anonymous()
        form = {"csrf": actionlinks.form_token(secret), "action": "approve"}
        evil = client.post(path, form, csrf=False, origin="https://evil.example")
        assert evil.status == 403 and "cross-site" in evil.text
        site = client.post(path, form, csrf=False, **{"Sec-Fetch-Site": "cross-site"})
        assert site.status == 403
        tokenless = client.post(path, {"action": "approve"}, csrf=False)
        assert tokenless.status == 403 and "CSRF token" in tokenless.text
        other = actionlinks.form_token("y" * 43)  # a token of another link
        forged = client.post(path, {"csrf": other, "action": "approve"}, csrf=False)
        assert forged.status == 403
        assert approval(hive, aid)["status"] == "pending"
        open_db(hive.paths.db, create=False)
        assert actionlinks.inspect(secret).state is LinkState.OPEN
        shown = client.get(path)
        assert shown.status == 200 and "noindex" in shown.headers["x-robots-tag"]
        ok = client.post(path, form, csrf=False)
        assert ok.status == 200 and ok.json()["message"] == f"approval #{aid} approved"
        assert secret not in web.log() and secret not in hive.log()
