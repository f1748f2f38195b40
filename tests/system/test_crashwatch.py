"""The crash watcher as a real systemd unit in a booted test host, with real nspawn containers.

One sandbox host per module, running the project's own units/hive-crashwatch.service (its
hardening included; a drop-in only shortens the watchdog). Agents are fake
`hive-agent@<name>.service` units running systemd-nspawn with a shell payload, registered
with the sandbox's machined. The database is the sandbox's /var/lib/hyperhive/hive.db,
a temp dir of the test bind-mounted there.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bench.crashwatch import container_argv
from services.cli.install import location_dropin
from services.hive import db
from services.hive.events import ContainerCrash, from_json
from services.hive.log import MESSAGE_IDS
from services.hive.platform import platform_paths
from services.sandbox.host import SandboxHost

REPO = Path(__file__).resolve().parents[2]
UNIT_FILE = REPO / "units" / "hive-crashwatch.service"
WATCHDOG_SEC = 3
STATE_DIR = "/var/lib/hyperhive"  # inside the sandbox

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("systemd-nspawn") is None,
    reason="needs root and systemd-nspawn (systemd-container) to boot a test host",
)

FALLBACK_UNIT = """[Unit]
Description=hyperhive crash watcher

[Service]
Type=notify
NotifyAccess=main
ExecStart=@BIN@/hive-crashwatch
Restart=on-failure
"""

SAFETY_NET_SEC = 1

TEST_DROPIN = f"""[Service]
WatchdogSec={WATCHDOG_SEC}
TimeoutAbortSec=1
RestartSec=200ms
Environment=HIVE_CRASHWATCH_RECONCILE={SAFETY_NET_SEC}
"""


@dataclass
class Hive:
    host: SandboxHost
    dbpath: Path
    conn: Any

    def sh(self, script: str, check: bool = True) -> str:
        return self.host.run("sh", "-c", script, check=check).stdout.strip()


def _outside_usr(*paths: str) -> list[Path]:
    """Python prefixes the sandbox cannot see: not under /usr and not in the repo."""
    out: list[Path] = []
    for p in {Path(x).resolve() for x in paths}:
        if not (p.is_relative_to("/usr") or p.is_relative_to(REPO)):
            out.append(p)
    return out


def unit_text() -> str:
    """The installed unit, as `hivectl install` renders it for this environment."""
    text = UNIT_FILE.read_text() if UNIT_FILE.exists() else FALLBACK_UNIT
    bindir = Path(sys.executable).parent
    if not (bindir / "hive-crashwatch").exists():  # not installed: run the module
        text = text.replace(
            "ExecStart=@BIN@/hive-crashwatch",
            f"ExecStart={sys.executable} -m services.crashwatch\n"
            f"WorkingDirectory={REPO}\nEnvironment=PYTHONPATH={REPO}",
        )
    return text.replace("@BIN@", str(bindir))


@pytest.fixture(scope="module")
def hive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hive]:
    root = tmp_path_factory.mktemp("crashwatch")
    host = SandboxHost(
        f"hive-cw-{os.getpid()}",
        binds=[REPO, root],
        binds_ro=_outside_usr(sys.prefix, sys.base_prefix),
        log_path=root / "boot.log",
    )
    state = root / "state"
    state.mkdir()
    try:
        host.boot()
        host.run("mkdir", "-p", STATE_DIR, "/run/hyperhive")
        host.run("mount", "--bind", str(state), STATE_DIR)  # the test reads it from outside
        dbpath = state / "hive.db"
        h = Hive(host=host, dbpath=dbpath, conn=db.open_db(dbpath))
        unit = "/run/systemd/system/hive-crashwatch.service"
        host.run("sh", "-c", f"cat > {unit}", input=unit_text())
        host.run("mkdir", "-p", f"{unit}.d")
        host.run("sh", "-c", f"cat > {unit}.d/50-test.conf", input=TEST_DROPIN)
        location = location_dropin(platform_paths())  # as `hivectl install` writes it
        if location is not None:
            host.run("sh", "-c", f"cat > {unit}.d/50-location.conf", input=location)
        host.run("systemctl", "daemon-reload")
        host.run("systemctl", "start", "hive-crashwatch.service", timeout=30)
        yield h
        h.conn.close()
    finally:
        if host.init_pid is not None:  # kept with the test's temp dir, for post-mortems
            out = host.run("journalctl", "-b", "--no-pager", "-o", "short-precise", check=False)
            (root / "journal.txt").write_text(out.stdout)
        host.poweroff()


# helpers -----------------------------------------------------------------------------------
def wait_for(what: str, pred: Callable[[], bool], timeout: float = 10) -> None:
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def machine_of(agent: str) -> str:
    return agent if agent == "hm1nd" else f"h-{agent}"


def add_agent(hive: Hive, name: str) -> None:
    db.database.initialize(hive.conn)
    db.Agent.create(name=name, kind="manager" if name == "hm1nd" else "agent", state="running")


def start_container(hive: Hive, agent: str) -> str:
    """Start a container as hive-agent@<agent>.service would; returns its marker line."""
    machine = machine_of(agent)
    marker = f"{agent} says hello {uuid.uuid4().hex[:8]}"
    hive.host.run(*container_argv(agent, f"echo {marker}; exec sleep 1000"))
    wait_for(f"{machine} watched", lambda: machine in watched(hive))
    return marker


def watched(hive: Hive) -> str:
    """The machines in the watcher's STATUS= line (its own view)."""
    status = hive.sh("systemctl show -P StatusText hive-crashwatch.service")
    return status.partition("(")[2].partition(")")[0]


def kill_payload(hive: Hive, agent: str) -> float:
    """kill -9 the payload (PID 2 of the container); returns the time right before the kill."""
    machine = machine_of(agent)
    leader = hive.sh(f"machinectl show -p Leader --value {machine}")
    found: list[str] = []

    def forked() -> bool:  # once it is `sleep`, the shell has echoed its marker
        found[:] = hive.sh(f"cat /proc/{leader}/task/*/children").split()
        return len(found) == 1 and hive.sh(f"cat /proc/{found[0]}/comm") == "sleep"

    wait_for(f"{machine}'s payload", forked)
    payload = found[0]
    t = time.time()
    hive.sh(f"kill -9 {payload}")
    return t


def crashes(hive: Hive, agent: str) -> list[tuple[float, ContainerCrash]]:
    with sqlite3.connect(hive.dbpath) as conn:
        rows = conn.execute(
            "SELECT created_at, body FROM messages"
            " WHERE sender = 'system' AND recipient = 'hm1nd' ORDER BY id"
        ).fetchall()
    out = []
    for created_at, body in rows:
        event = from_json(body)
        if isinstance(event, ContainerCrash) and event.agent == agent:
            out.append((created_at, event))
    return out


def watcher_prop(hive: Hive, prop: str) -> str:
    return hive.sh(f"systemctl show -P {prop} hive-crashwatch.service")


def crash_and_expect_report(hive: Hive, agent: str, marker: str) -> ContainerCrash:
    t0 = kill_payload(hive, agent)
    wait_for(f"{agent}'s crash report", lambda: len(crashes(hive, agent)) >= 1)
    time.sleep(0.3)  # a duplicate would show up by now
    [(created_at, event)] = crashes(hive, agent)
    assert 0 <= created_at - t0 < 2
    assert marker in event.note
    return event


# tests -------------------------------------------------------------------------------------
def test_watcher_is_ready_and_says_what_it_watches(hive: Hive) -> None:
    assert watcher_prop(hive, "ActiveState") == "active"
    assert watcher_prop(hive, "Type") == "notify"
    assert watcher_prop(hive, "StatusText").startswith("watching machined for hive containers")


def test_kill_9_of_the_payload_is_one_crash(hive: Hive) -> None:
    add_agent(hive, "alice")
    marker = start_container(hive, "alice")
    event = crash_and_expect_report(hive, "alice", marker)
    assert "hive-agent@alice.service failed (result exit-code" in event.note
    assert "main process exited with status" in event.note
    assert "Container h-alice failed" in event.note or marker in event.note.splitlines()[-1]
    assert "h-alice" not in watched(hive)
    # the structured journal line: journalctl HIVE_AGENT=alice MESSAGE_ID=<container_crash>
    line = hive.sh(
        "journalctl -o cat HIVE_AGENT=alice MESSAGE_ID=" + MESSAGE_IDS["container_crash"]
    )
    assert line.startswith("alice crashed: hive-agent@alice.service failed")
    # the watcher never touched the agents table
    with sqlite3.connect(hive.dbpath) as conn:
        assert conn.execute("SELECT state FROM agents WHERE name='alice'").fetchone() == (
            "running",
        )


def test_stop_under_a_transient_state_is_not_a_crash(hive: Hive) -> None:
    add_agent(hive, "bob")
    start_container(hive, "bob")
    db.database.initialize(hive.conn)
    db.TransientState.create(agent="bob", state="stopping")  # what the coordinator writes first
    hive.host.run("systemctl", "stop", "hive-agent@bob.service")
    wait_for("h-bob judged", lambda: "h-bob" not in watched(hive))
    db.Agent.update(state="stopped").where(db.Agent.name == "bob").execute()
    db.TransientState.delete().where(db.TransientState.agent == "bob").execute()
    time.sleep(0.3)
    assert crashes(hive, "bob") == []
    said = hive.sh("journalctl -o cat HIVE_AGENT=bob")
    assert "h-bob went away, not a crash: an operator action is under way" in said


def test_manager_crash_is_reported(hive: Hive) -> None:
    add_agent(hive, "hm1nd")
    marker = start_container(hive, "hm1nd")
    event = crash_and_expect_report(hive, "hm1nd", marker)
    assert "hive-agent@hm1nd.service failed" in event.note


def test_crash_after_a_machined_restart_is_reported(hive: Hive) -> None:
    add_agent(hive, "carol")
    add_agent(hive, "cleo")
    marker = start_container(hive, "carol")  # up before the restart
    pid = watcher_prop(hive, "MainPID")
    hive.host.run("systemctl", "restart", "systemd-machined.service")
    crash_and_expect_report(hive, "carol", marker)
    marker = start_container(hive, "cleo")  # up after it
    crash_and_expect_report(hive, "cleo", marker)
    assert watcher_prop(hive, "MainPID") == pid


def test_crash_after_a_dbus_restart_is_reported(hive: Hive) -> None:
    add_agent(hive, "dave")
    pid = watcher_prop(hive, "MainPID")
    hive.host.run("systemctl", "restart", "dbus.service")
    marker = start_container(hive, "dave")
    crash_and_expect_report(hive, "dave", marker)
    assert watcher_prop(hive, "MainPID") == pid  # it resubscribed; systemd did not restart it
    assert watcher_prop(hive, "NRestarts") == "0"


def test_crash_while_the_watcher_was_down_is_caught_up(hive: Hive) -> None:
    add_agent(hive, "erin")
    marker = start_container(hive, "erin")
    hive.host.run("systemctl", "stop", "hive-crashwatch.service")
    kill_payload(hive, "erin")
    wait_for(
        "erin's unit failed",
        lambda: hive.sh("systemctl show -P ActiveState hive-agent@erin.service") == "failed",
    )
    hive.host.run("systemctl", "start", "hive-crashwatch.service", timeout=30)
    wait_for("erin's crash report", lambda: len(crashes(hive, "erin")) >= 1)
    hive.host.run("systemctl", "restart", "hive-crashwatch.service", timeout=30)
    time.sleep(0.3)
    [(_, event)] = crashes(hive, "erin")
    assert "found on a later check: nobody saw it go" in event.note
    assert marker in event.note


def test_crash_during_a_restart_is_found_by_the_safety_net(hive: Hive) -> None:
    add_agent(hive, "gina")
    db.TransientState.create(agent="gina", state="restarting")
    marker = start_container(hive, "gina")  # the restart's new run...
    kill_payload(hive, "gina")  # ...dies at once, while the restart is still under way
    wait_for("h-gina judged", lambda: "h-gina" not in watched(hive))
    time.sleep(2 * SAFETY_NET_SEC)
    assert crashes(hive, "gina") == []
    db.TransientState.delete().where(db.TransientState.agent == "gina").execute()
    wait_for("gina's crash report", lambda: len(crashes(hive, "gina")) >= 1, timeout=5)
    time.sleep(2 * SAFETY_NET_SEC)
    [(_, event)] = crashes(hive, "gina")
    assert "found on a later check: nobody saw it go" in event.note
    assert marker in event.note


def test_a_hung_watcher_is_restarted_by_the_watchdog(hive: Hive) -> None:
    add_agent(hive, "fred")
    restarts = int(watcher_prop(hive, "NRestarts"))
    pid = watcher_prop(hive, "MainPID")
    hive.sh(f"kill -STOP {pid}")  # alive but silent: no more WATCHDOG=1
    wait_for(
        "a watchdog restart",
        lambda: (
            int(watcher_prop(hive, "NRestarts")) > restarts
            and watcher_prop(hive, "ActiveState") == "active"
        ),
        timeout=WATCHDOG_SEC + 10,
    )
    assert watcher_prop(hive, "MainPID") != pid
    said = hive.sh("journalctl -o cat -u hive-crashwatch.service")
    assert "Watchdog timeout" in said
    marker = start_container(hive, "fred")
    crash_and_expect_report(hive, "fred", marker)
