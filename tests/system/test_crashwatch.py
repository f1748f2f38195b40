"""The crash watcher as installed: `hivectl install` in a booted sandbox host, agents spawned
with `hivectl` (payload `/bin/sleep infinity`), crashes made by `kill -9` of the payload.

Everything runs through the installed hive-crashwatch.service and hive-agent@.service,
hardening included; the only setting changed is HIVE_CRASHWATCH_RECONCILE (1 s, through
`hivectl install --set`), and the watchdog test shortens WatchdogSec with a drop-in for
its own duration. Reports are read where the manager reads them: hm1nd's inbox on the
manager socket, and the messages and events tables.

No assertion is on speed (that is bench/crashwatch.py). "Exactly one" is checked after a
barrier: `systemctl restart hive-crashwatch` returns once the new watcher sent READY=1,
which it does only after comparing its view with machined and looking for crashes nobody
reported, the same check its safety net repeats; so whatever the old process had written
is visible, and a fresh check has had its chance to repeat a report.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hyperhive.hive.log import MESSAGE_IDS

from tests.system.hivehost import HiveHost, booted_hive

WATCHER = "hive-crashwatch.service"
DB = "/var/lib/hyperhive/hive.db"  # inside the sandbox, where `hivectl install` puts it
SAFETY_NET_SEC = 1
WATCHDOG_DROPIN = f"/run/systemd/system/{WATCHER}.d/60-test-watchdog.conf"
NOT_A_CRASH = "went away, not a crash: "


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HiveHost]:
    """The hive installed in a booted sandbox; its journal is kept beside the boot log."""
    log_dir = tmp_path_factory.mktemp("crashwatch")
    settings = {
        "HIVE_AGENT_COMMAND": "/bin/sleep infinity",
        "HIVE_CRASHWATCH_RECONCILE": str(SAFETY_NET_SEC),
    }
    with booted_hive(log_dir, settings=settings) as h:
        try:
            yield h
        finally:
            journal = h.sh("journalctl -b --no-pager -o short-precise", check=False)
            (log_dir / "journal.txt").write_text(journal)


# helpers -----------------------------------------------------------------------------------
def wait_for(what: str, pred: Callable[[], bool], timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def machine_of(agent: str) -> str:
    return agent if agent == "hm1nd" else f"h-{agent}"


def unit_of(agent: str) -> str:
    return f"hive-agent@{agent}.service"


def sql(host: HiveHost, query: str) -> list[dict[str, Any]]:
    out = host.sandbox.run("sqlite3", "-json", "-cmd", ".timeout 10000", DB, query).stdout
    return list(json.loads(out)) if out.strip() else []


def watched(host: HiveHost) -> set[str]:
    """The machines in the watcher's STATUS= line (its own view)."""
    status = host.unit_prop(WATCHER, "StatusText")
    inside = status.partition("(")[2].partition(")")[0]
    return {m for m in inside.partition(": ")[2].split(", ") if m}


def agent_row(host: HiveHost, agent: str) -> dict[str, Any]:
    return dict(host.hivectl("status", agent)["agents"][0])


def up(host: HiveHost, agent: str) -> str:
    """The agent's container running (spawned or started with hivectl) and in the watcher's
    view; returns the invocation id of that run of its unit."""
    rows = {r["name"]: r for r in host.hivectl("list")["agents"]}
    if agent not in rows:
        host.hivectl("spawn", agent)
    elif rows[agent]["state"] != "running":
        host.hivectl("start", agent)
    machine = machine_of(agent)
    wait_for(f"the watcher to see {machine}", lambda: machine in watched(host))
    return host.unit_prop(unit_of(agent), "InvocationID")


def payload(host: HiveHost, agent: str) -> int:
    """The container's payload, once its stub init (--as-pid2) has exec'd it."""
    leader = host.sh(f"machinectl show --property=Leader --value {machine_of(agent)}").strip()
    found: list[str] = []

    def started() -> bool:
        found[:] = host.sh(f"cat /proc/{leader}/task/*/children", check=False).split()
        comm = f"cat /proc/{found[0]}/comm" if len(found) == 1 else "true"
        return host.sh(comm, check=False).strip() == "sleep"

    wait_for(f"{agent}'s payload", started)
    return int(found[0])


def say(host: HiveHost, agent: str, run: str) -> str:
    """A line on the payload's stdout, as its own output would be; once it is in the
    journal under that run of the unit, returns it."""
    marker = f"{agent} says hello {uuid.uuid4().hex[:8]}"
    host.sh(f"echo '{marker}' > /proc/{payload(host, agent)}/fd/1")
    wait_for(
        f"{agent}'s line in the journal",
        lambda: marker in host.sh(f"journalctl -o cat _SYSTEMD_INVOCATION_ID={run}"),
    )
    return marker


def kill_payload(host: HiveHost, agent: str) -> None:
    host.sh(f"kill -9 {payload(host, agent)}")


def next_crash(host: HiveHost, agent: str) -> dict[str, Any]:
    """The next container_crash in hm1nd's inbox (other events are read past); it is agent's."""
    event = host.wait_event("container_crash", timeout=60)
    assert event["agent"] == agent, event
    return event


def crash_notes(host: HiveHost, agent: str) -> list[str]:
    """Every container_crash for `agent` in hm1nd's inbox (delivered or not)."""
    rows = sql(
        host,
        "SELECT body FROM messages WHERE sender = 'system' AND recipient = 'hm1nd' "
        "AND json_extract(body, '$.event') = 'container_crash' "
        f"AND json_extract(body, '$.agent') = '{agent}' ORDER BY id",
    )
    return [json.loads(r["body"])["note"] for r in rows]


def crash_events(host: HiveHost, agent: str) -> int:
    rows = sql(
        host,
        f"SELECT count(*) AS n FROM events WHERE kind = 'container_crash' AND agent = '{agent}'",
    )
    return int(rows[0]["n"])


def barrier(host: HiveHost) -> None:
    """A restarted watcher has compared its view with machined and caught up (READY=1)."""
    host.sh(f"systemctl restart {WATCHER}")
    assert host.unit_prop(WATCHER, "ActiveState") == "active"


def assert_reported_once(host: HiveHost, agent: str) -> str:
    barrier(host)
    [note] = crash_notes(host, agent)
    assert crash_events(host, agent) == 1
    return note


def judged_not_a_crash(host: HiveHost, agent: str) -> list[str]:
    """The watcher's journal lines saying a removal of `agent`'s machine was no crash."""
    said = host.sh(f"journalctl -o cat HIVE_AGENT={agent}", check=False)
    return [line for line in said.splitlines() if NOT_A_CRASH in line]


def watcher_prop(host: HiveHost, prop: str) -> str:
    return host.unit_prop(WATCHER, prop)


# tests -------------------------------------------------------------------------------------
def test_the_installed_watcher_is_ready_and_says_what_it_watches(host: HiveHost) -> None:
    assert watcher_prop(host, "FragmentPath") == f"/etc/systemd/system/{WATCHER}"
    dropins = watcher_prop(host, "DropInPaths").split()
    assert all(p.endswith("/50-location.conf") for p in dropins), dropins  # hivectl's only
    assert watcher_prop(host, "ActiveState") == "active"
    assert watcher_prop(host, "Type") == "notify"
    assert watcher_prop(host, "ProtectSystem") == "strict"  # the hardening is in force
    assert watcher_prop(host, "PrivateNetwork") == "yes"
    assert watcher_prop(host, "StatusText").startswith("watching machined for hive containers")
    assert "hm1nd" in watched(host)


def test_kill_9_of_the_payload_is_one_crash(host: HiveHost) -> None:
    host.manager_events()
    run = up(host, "alice")
    marker = say(host, "alice", run)
    kill_payload(host, "alice")
    note = next_crash(host, "alice")["note"]
    assert note.startswith(
        "hive-agent@alice.service failed (result exit-code, main process exited with status"
    )
    assert f"journalctl _SYSTEMD_INVOCATION_ID={run}" in note  # that run, and its last lines
    assert marker in note.partition("\nlast lines:\n")[2]
    # the structured journal line: journalctl HIVE_AGENT=alice MESSAGE_ID=<container_crash>
    said = host.sh(
        "journalctl -o cat HIVE_AGENT=alice MESSAGE_ID=" + MESSAGE_IDS["container_crash"]
    )
    [line] = said.splitlines()
    assert line.startswith("alice crashed: hive-agent@alice.service failed")
    # the coordinator took it in: alice shows failed, with the note
    wait_for("alice failed", lambda: agent_row(host, "alice")["state"] == "failed")
    assert agent_row(host, "alice")["note"] == note
    wait_for("h-alice out of the watcher's view", lambda: "h-alice" not in watched(host))
    assert assert_reported_once(host, "alice") == note


def test_an_operator_restart_or_stop_is_not_a_crash(host: HiveHost) -> None:
    up(host, "bob")
    host.hivectl("restart", "bob")
    wait_for("the watcher to see bob's new container", lambda: "h-bob" in watched(host))
    host.hivectl("stop", "bob")
    wait_for("both removals judged", lambda: len(judged_not_a_crash(host, "bob")) >= 2)
    barrier(host)
    assert len(judged_not_a_crash(host, "bob")) == 2
    assert crash_notes(host, "bob") == []
    assert crash_events(host, "bob") == 0
    assert agent_row(host, "bob")["state"] == "stopped"
    reasons = {line.partition(NOT_A_CRASH)[2] for line in judged_not_a_crash(host, "bob")}
    assert reasons <= {
        "an operator action is under way",
        "the agent was not meant to be running",
        "it is back up (restarted)",
    }, reasons


def test_a_manager_crash_is_reported(host: HiveHost) -> None:
    host.manager_events()
    run = up(host, "hm1nd")
    marker = say(host, "hm1nd", run)
    kill_payload(host, "hm1nd")
    note = next_crash(host, "hm1nd")["note"]  # waits in its inbox for its next start
    assert note.startswith("hive-agent@hm1nd.service failed")
    assert f"_SYSTEMD_INVOCATION_ID={run}" in note and marker in note
    wait_for("hm1nd failed", lambda: agent_row(host, "hm1nd")["state"] == "failed")
    assert assert_reported_once(host, "hm1nd") == note
    up(host, "hm1nd")


def test_crashes_after_a_machined_restart_are_reported(host: HiveHost) -> None:
    host.manager_events()
    pid = watcher_prop(host, "MainPID")
    up(host, "carol")  # up before the restart
    host.sh("systemctl restart systemd-machined.service")
    kill_payload(host, "carol")
    next_crash(host, "carol")
    up(host, "cleo")  # up after it
    kill_payload(host, "cleo")
    next_crash(host, "cleo")
    assert watcher_prop(host, "MainPID") == pid  # the same process, still subscribed
    assert_reported_once(host, "carol")
    assert_reported_once(host, "cleo")


def test_a_crash_after_a_dbus_restart_is_reported(host: HiveHost) -> None:
    host.manager_events()
    pid, restarts = watcher_prop(host, "MainPID"), watcher_prop(host, "NRestarts")
    host.sh("systemctl restart dbus.service")
    up(host, "dave")
    kill_payload(host, "dave")
    next_crash(host, "dave")
    assert watcher_prop(host, "MainPID") == pid  # it resubscribed; systemd did not restart it
    assert watcher_prop(host, "NRestarts") == restarts
    said = host.sh(f"journalctl -o cat -u {WATCHER}")
    assert "subscribed to machined again" in said
    assert_reported_once(host, "dave")


def test_a_crash_while_the_watcher_was_down_is_caught_up(host: HiveHost) -> None:
    host.manager_events()
    run = up(host, "erin")
    marker = say(host, "erin", run)
    host.sh(f"systemctl stop {WATCHER}")
    kill_payload(host, "erin")
    wait_for(
        "erin's unit failed", lambda: host.unit_prop(unit_of("erin"), "ActiveState") == "failed"
    )
    assert agent_row(host, "erin")["state"] == "running"  # nobody told the coordinator
    host.sh(f"systemctl start {WATCHER}")  # READY=1 only after the catch-up
    [note] = crash_notes(host, "erin")
    assert "found on a later check: nobody saw it go" in note
    assert f"_SYSTEMD_INVOCATION_ID={run}" in note and marker in note
    assert next_crash(host, "erin")["note"] == note
    assert assert_reported_once(host, "erin") == note


def test_a_crash_during_a_restart_is_found_by_the_safety_net(host: HiveHost) -> None:
    host.manager_events()
    run = up(host, "gina")
    marker = say(host, "gina", run)
    # what the coordinator writes first when it restarts gina; the restart's new run dies
    sql(host, "INSERT INTO transient_state (agent, state, since) VALUES ('gina', 'restarting', 0)")
    kill_payload(host, "gina")
    wait_for("h-gina judged", lambda: len(judged_not_a_crash(host, "gina")) >= 1)
    barrier(host)  # a fresh catch-up while the action is under way: not a crash yet
    [judged] = judged_not_a_crash(host, "gina")
    assert judged.endswith("an operator action is under way")
    assert crash_notes(host, "gina") == []
    sql(host, "DELETE FROM transient_state WHERE agent = 'gina'")  # the restart ends
    note = next_crash(host, "gina")["note"]  # from the live watcher's safety net
    assert "found on a later check: nobody saw it go" in note
    assert f"_SYSTEMD_INVOCATION_ID={run}" in note and marker in note
    assert assert_reported_once(host, "gina") == note


def test_a_hung_watcher_is_restarted_by_the_watchdog(host: HiveHost) -> None:
    host.manager_events()
    up(host, "fred")
    # WatchdogSec=30 as installed; 3 s here, and SIGKILL 1 s after the watchdog's SIGABRT
    # (a stopped process cannot act on SIGABRT)
    host.sh(
        f"mkdir -p $(dirname {WATCHDOG_DROPIN}) && printf '[Service]\\nWatchdogSec=3\\n"
        f"TimeoutAbortSec=1\\n' > {WATCHDOG_DROPIN} && systemctl daemon-reload && "
        f"systemctl restart {WATCHER}"
    )
    try:
        restarts = int(watcher_prop(host, "NRestarts"))
        pid = watcher_prop(host, "MainPID")
        host.sh(f"kill -STOP {pid}")  # alive but silent: no more WATCHDOG=1
        wait_for(
            "a watchdog restart",
            lambda: (
                int(watcher_prop(host, "NRestarts")) > restarts
                and watcher_prop(host, "ActiveState") == "active"
            ),
        )
        assert watcher_prop(host, "MainPID") != pid
        assert "Watchdog timeout" in host.sh(f"journalctl -o cat -u {WATCHER}")
    finally:
        host.sh(f"rm -f {WATCHDOG_DROPIN} && systemctl daemon-reload", check=False)
    up(host, "fred")  # the new watcher sees it
    kill_payload(host, "fred")
    next_crash(host, "fred")
    assert_reported_once(host, "fred")
