"""Network grants through the coordinator: `network = "host"` is a risk line on the approval
(hivectl pending and the dashboard card, from the bytes being approved), and the upgrade
gives configs approved when a missing key meant the host an explicit `network = "host"`,
once, with a note on the dashboard."""

from __future__ import annotations

import tomllib

import git
from hyperhive.cli.render import approvals_text
from hyperhive.coordinator.network_upgrade import COMMIT_MESSAGE
from hyperhive.hive.agentconfig import parse
from hyperhive.hive.db import Approval, Notification
from hyperhive.hive.vocab import Network
from hyperhive.web import pages, views

from tests.hivetest import spawn
from tests.inproc import InProcessHive
from tests.integration.flowtools import commit_file, config_text


def _request(hive: InProcessHive, agent: str, extra: str) -> int:
    sha = commit_file(hive.paths.proposed_repo(agent), "agent.toml", config_text(extra), "net")
    return int(hive.manager("request_apply_commit", agent=agent, commit_ref=sha)["id"])


def test_host_network_is_a_risk_on_pending_and_on_the_card(inproc: InProcessHive) -> None:
    spawn(inproc, "alice")
    host_id = _request(inproc, "alice", 'network = "host"\n')
    egress_id = _request(inproc, "alice", 'network = "egress"\negress = ["pypi.org"]\n')
    rows = {a["id"]: a for a in inproc.admin("pending")["approvals"]}
    (risk,) = rows[host_id]["risks"]
    assert risk.startswith('network = "host": alice shares the host\'s network'), risk
    assert rows[egress_id]["risks"] == []
    text = approvals_text([rows[host_id]])
    assert f"⚠ RISK: {risk}" in text.splitlines()[1]  # right under the header, above the diff

    card = pages.render("approval", a=views.approval_view(Approval.get_by_id(host_id)))
    assert 'class="risk"' in card and "alice shares the host&#039;s network" in card
    card = pages.render("approval", a=views.approval_view(Approval.get_by_id(egress_id)))
    assert 'class="risk"' not in card


def test_the_upgrade_keeps_host_for_old_configs_once(inproc: InProcessHive) -> None:
    spawn(inproc, "alice")
    applied = inproc.paths.applied_repo("alice")
    before = (applied / "agent.toml").read_bytes()
    assert "network" not in tomllib.loads(before.decode())  # the template leaves it out
    assert parse(before).network is Network.PRIVATE
    assert inproc.paths.network_migrated.exists()  # a new hive: nothing to upgrade
    pending = _request(inproc, "alice", 'model = "m"\n')
    inproc.stop()

    # the state an older version leaves: no marker, configs without the key
    inproc.paths.network_migrated.unlink()
    with InProcessHive(inproc.env) as again:
        after = (applied / "agent.toml").read_bytes()
        assert after.endswith(before) and parse(after).network is Network.HOST
        assert git.Repo(applied).head.commit.message.strip() == COMMIT_MESSAGE
        assert sorted(p.name for p in applied.iterdir() if p.name != ".git") == [
            "agent.toml",
            "harness.env",
        ]
        notes = {
            n.agent: n.text
            for n in Notification.select().where(Notification.kind == "network_upgrade")
        }
        assert set(notes) == {"alice", "hm1nd"}
        assert notes["alice"].startswith("alice keeps the host network it was approved with")
        shown = [n for n in views.notifications() if n["kind"] == "network_upgrade"]
        assert len(shown) == 2 and all(n["alert"] for n in shown)  # red on the dashboard
        # the pending approval's diff was computed against the old bytes: stale now
        row = next(a for a in again.admin("pending")["approvals"] if a["id"] == pending)
        assert row["stale"]
        # a config approved from now on without the key is private
        approved = _request(again, "alice", 'model = "m2"\n')
        assert again.admin("approve", id=approved)["approval"]["status"] == "approved"
        assert parse((applied / "agent.toml").read_bytes()).network is Network.PRIVATE

    with InProcessHive(inproc.env):  # once per hive: the marker stands
        assert parse((applied / "agent.toml").read_bytes()).network is Network.PRIVATE
        assert Notification.select().where(Notification.kind == "network_upgrade").count() == 2
