"""The hive as real systemd units in a booted sandbox host: units, nspawn containers, approvals
that restart a container with new settings, socket activation, the watchdog, auto-update."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import time

from tests.system.hivehost import PLATFORM_ROOT, VENV_BIN, HiveHost

SERVICES = (
    "hive-coordinator.service",
    "hive-gateway.service",
    "hive-crashwatch.service",
    "hive-web.service",
    "hive-notify.service",
)
SOCKETS = ("hive-admin.socket", "hive-manager.socket", "hive-autoupdate.path")


def apply_config(host: HiveHost, text: str, agent: str = "alice") -> None:
    """Commit `text` as the agent's config, as the manager would, and have it approved."""
    sha = host.commit_config(agent, text)
    req = host.call(
        "/run/hyperhive/manager/hive.sock", "request_apply_commit", agent=agent, commit_ref=sha
    )
    assert req["ok"], req
    approval = host.hivectl("approve", str(req["id"]), timeout=600)["approval"]
    assert approval["status"] == "approved", approval


def ensure_running(host: HiveHost, name: str) -> None:
    rows = {r["name"]: r for r in host.hivectl("list")["agents"]}
    if name not in rows:
        host.hivectl("spawn", name)
    elif rows[name]["state"] != "running":
        host.hivectl("start", name)


def test_every_unit_is_active(host: HiveHost) -> None:
    for unit in (*SERVICES, *SOCKETS, "hyperhive.target"):
        assert host.unit_prop(unit, "ActiveState") == "active", (
            unit,
            host.sh(f"journalctl -u {unit} --no-pager | tail -20", check=False),
        )
    assert host.unit_prop("hive-autoupdate.service", "Result") == "success"


def test_units_verify_clean(host: HiveHost) -> None:
    out = host.sandbox.run(
        "systemd-analyze",
        "verify",
        "hyperhive.target",
        *SERVICES,
        *SOCKETS,
        "hive-autoupdate.service",
        "hive-agent@hm1nd.service",
        check=False,
    )
    assert out.returncode == 0 and out.stderr.strip() == "", out.stderr


def test_manager_runs_in_a_real_container(host: HiveHost) -> None:
    assert "hm1nd" in host.machines()
    env = host.environ(host.payload_pid("hm1nd"))
    assert env["HIVE_AGENT"] == "hm1nd" and env["HIVE_AGENTS_DIR"] == "/agents"
    assert env["HIVE_SOCKET"] == "/run/hive/hive.sock"


def test_spawn_puts_an_agent_in_an_nspawn_container(host: HiveHost) -> None:
    row = host.hivectl("spawn", "alice")["agent"]
    assert row["state"] == "running"
    assert "h-alice" in host.machines()
    assert host.unit_prop("hive-agent@alice.service", "ActiveState") == "active"
    env = host.environ(host.payload_pid("h-alice"))
    assert env["HIVE_AGENT"] == "alice" and env["HIVE_AGENT_STATE"] == "/state"
    # its socket, bind-mounted into the container, answers as alice
    reply = host.call("/run/hyperhive/agents/alice/hive.sock", "whoami")
    assert reply["name"] == "alice"


def test_an_agents_state_dir_is_bound_from_out_of_the_managers_reach(host: HiveHost) -> None:
    ensure_running(host, "alice")
    state = "/var/lib/hyperhive/agent-state/alice"
    pid = host.payload_pid("h-alice")
    # the container's /state is that very directory (same device and inode through the bind)
    inside = host.sh(f"stat -c %d:%i /proc/{pid}/root/state").strip()
    assert inside == host.sh(f"stat -c %d:%i {state}").strip()
    # its container's root owns it (an unprivileged uid on the host); its parent is root's
    root_uid = host.sh(f"cat /proc/{pid}/uid_map").split()[1]
    assert host.sh(f"stat -c %a:%u {state} /var/lib/hyperhive/agent-state").split() == [
        f"700:{root_uid}",
        "700:0",
    ]
    # hm1nd's /agents holds alice's proposed repo and nothing it could swap for a link
    manager = host.payload_pid("hm1nd")
    assert host.sh(f"ls -A /proc/{manager}/root/agents/alice").split() == ["config"]
    assert host.sh(f"ls -A /proc/{manager}/root/ | grep -c agent-state", check=False).strip() == "0"


def test_git_in_a_container_commits_as_its_own_agent(host: HiveHost) -> None:
    ensure_running(host, "alice")
    manager = host.payload_pid("hm1nd")
    env = host.environ(manager)  # what every process in hm1nd's container gets
    keep = " ".join(
        shlex.quote(f"{k}={v}") for k, v in env.items() if k.startswith(("GIT_", "HOME", "PATH"))
    )
    script = (
        "cd /agents/alice/config && echo '# touched by hm1nd' >> agent.toml && "
        "git add agent.toml && git commit -qm 'from inside hm1nd' && "
        "git log -1 --format='%an <%ae> / %cn <%ce>'"
    )
    out = host.sh(f"{host.in_container(manager)} env -i {keep} /bin/sh -c {shlex.quote(script)}")
    assert out.strip().splitlines()[-1] == "hm1nd <hm1nd@hyperhive> / hm1nd <hm1nd@hyperhive>"


def test_an_approved_change_restarts_the_container_with_new_settings(host: HiveHost) -> None:
    ensure_running(host, "alice")
    host.manager_events()
    old = host.payload_pid("h-alice")
    apply_config(
        host, 'system_prompt = "x"\n[environment]\nCOLOUR = "teal"\n[limits]\nmemory = "300M"\n'
    )
    new = host.payload_pid("h-alice")
    assert new != old
    assert host.environ(new)["COLOUR"] == "teal"
    assert host.unit_prop("hive-agent@alice.service", "MemoryMax") == str(300 * 1024 * 1024)
    kinds = [e["event"] for e in host.manager_events()]
    assert kinds == ["rebuilt", "approval_resolved"]


def test_kill_9_of_the_payload_is_a_crash_and_a_stop_is_not(host: HiveHost) -> None:
    ensure_running(host, "alice")
    host.manager_events()
    host.sh(f"kill -9 {host.payload_pid('h-alice')}")
    crash = host.wait_event("container_crash")
    assert crash["agent"] == "alice"
    row = host.hivectl("status", "alice")["agents"][0]
    assert row["state"] == "failed"
    host.hivectl("start", "alice")
    assert "h-alice" in host.machines()
    cursor = host.journal_cursor()
    host.hivectl("stop", "alice")
    assert "h-alice" not in host.machines()
    # the watcher has judged this stop (a crash report would have come instead of the line)
    host.wait_journal("h-alice went away, not a crash: ", "HIVE_AGENT=alice", after=cursor)
    assert [e for e in host.manager_events() if e["event"] == "container_crash"] == []


def test_a_client_connecting_while_the_coordinator_restarts_is_served(host: HiveHost) -> None:
    host.sh("systemctl stop hive-coordinator.service")
    assert host.unit_prop("hive-manager.socket", "ActiveState") == "active"
    # the kernel queues the connection; systemd starts the coordinator for it
    reply = host.call("/run/hyperhive/manager/hive.sock", "whoami")
    assert reply == {"ok": True, "version": 1, "name": "hm1nd", "role": "manager"}
    assert host.unit_prop("hive-coordinator.service", "ActiveState") == "active"


def test_a_coordinator_that_stops_pinging_is_restarted(host: HiveHost) -> None:
    host.sh(
        "mkdir -p /run/systemd/system/hive-coordinator.service.d && printf "
        "'[Service]\\nWatchdogSec=2\\n' > /run/systemd/system/hive-coordinator.service.d/wd.conf"
        " && systemctl daemon-reload && systemctl restart hive-coordinator.service"
    )
    try:
        before = int(host.unit_prop("hive-coordinator.service", "NRestarts"))
        pid = host.unit_prop("hive-coordinator.service", "MainPID")
        host.sh(f"kill -STOP {pid}")
        deadline = time.monotonic() + 30
        while int(host.unit_prop("hive-coordinator.service", "NRestarts")) == before:
            assert time.monotonic() < deadline, "the watchdog did not restart the coordinator"
            time.sleep(0.5)
        host.sh("systemctl is-active --wait hive-coordinator.service || true")
        assert host.call("/run/hyperhive/host.sock", "whoami")["ok"]
    finally:
        host.sh(
            "rm -rf /run/systemd/system/hive-coordinator.service.d && systemctl daemon-reload"
            " && systemctl restart hive-coordinator.service"
        )


def test_a_platform_upgrade_rebuilds_every_container_once(host: HiveHost) -> None:
    names = [r["name"] for r in host.hivectl("list")["agents"] if r["state"] != "failed"]
    assert "hm1nd" in names
    host.manager_events()
    host.sh(f"echo v2 > {PLATFORM_ROOT}/platform.py")
    deadline = time.monotonic() + 60  # the dashboard's view of the rev is at most 2 s old
    while not all(r["needs_update"] for r in host.hivectl("list")["agents"] if r["name"] in names):
        assert time.monotonic() < deadline, "the stale containers are not flagged"
        time.sleep(0.5)
    # what an upgrade does: the package changes, then `hivectl install` records the new rev
    host.sh(f"{VENV_BIN / 'hivectl'} install > /dev/null")
    deadline = time.monotonic() + 120
    rebuilt: list[str] = []
    while sorted(rebuilt) != sorted(names):
        left = deadline - time.monotonic()
        assert left > 0, f"rebuilt only {rebuilt} of {names}"
        reply = host.call("/run/hyperhive/manager/hive.sock", "recv", wait_seconds=min(left, 60))
        if reply.get("message"):
            body = json.loads(reply["message"]["body"])
            if body["event"] == "rebuilt":
                assert body["ok"], body
                rebuilt.append(body["agent"])
    assert all(not r["needs_update"] for r in host.hivectl("list")["agents"])
    # once each: the run that rebuilt them is over, and it sent no second `rebuilt`
    deadline = time.monotonic() + 120
    while host.unit_prop("hive-autoupdate.service", "ActiveState") != "inactive":
        assert time.monotonic() < deadline, "hive-autoupdate.service is still running"
        time.sleep(0.5)
    assert host.unit_prop("hive-autoupdate.service", "Result") == "success"
    assert [e for e in host.manager_events() if e["event"] == "rebuilt"] == []


def _set_packages(host: HiveHost, packages: str) -> None:
    apply_config(host, f'system_prompt = "x"\npackages = [{packages}]\n')


def _in_container(host: HiveHost, path: str) -> bool:
    pid = host.payload_pid("h-alice")
    return (
        host.sandbox.run(
            "nsenter", "-t", str(pid), "-m", "test", "-e", path, check=False
        ).returncode
        == 0
    )


def test_packages_become_a_layer_and_a_new_list_replaces_it(host: HiveHost) -> None:
    ensure_running(host, "alice")
    _set_packages(host, '"hello"')
    assert _in_container(host, "/usr/bin/hello")
    assert not _in_container(host, "/usr/games/cowsay")
    _set_packages(host, '"cowsay"')
    assert _in_container(host, "/usr/games/cowsay")
    assert not _in_container(host, "/usr/bin/hello")  # the old layer is gone
    assert not host.sh("test -e /usr/bin/hello && echo leaked || true").strip()  # host untouched


def test_private_network_and_cpu_limit_come_from_the_config(host: HiveHost) -> None:
    ensure_running(host, "alice")
    apply_config(host, 'system_prompt = "x"\nnetwork = "private"\n[limits]\ncpu = 0.5\n')
    pid = host.payload_pid("h-alice")
    own = host.sh(f"readlink /proc/{pid}/ns/net").strip()
    assert own != host.sh("readlink /proc/1/ns/net").strip()  # its own network namespace
    assert host.unit_prop("hive-agent@alice.service", "CPUQuotaPerSecUSec") == "500ms"
    apply_config(host, 'system_prompt = "x"\nnetwork = "host"\n')
    pid = host.payload_pid("h-alice")
    assert (
        host.sh(f"readlink /proc/{pid}/ns/net").strip()
        == host.sh("readlink /proc/1/ns/net").strip()
    )


def test_the_tour_commits_as_hm1nd_inside_its_container(host: HiveHost) -> None:
    tour = subprocess.Popen(
        host.sandbox.command(str(VENV_BIN / "hivectl"), "tour", "--step-timeout", "300"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert tour.stdout is not None
    said = []
    try:
        for line in tour.stdout:
            said.append(line)
            if m := re.match(r"→ approval #(\d+)", line):
                row = next(a for a in host.hivectl("pending")["approvals"] if a["id"] == int(m[1]))
                if row["kind"] == "apply_commit":
                    assert "by hm1nd <hm1nd@hyperhive>" in row["diff"]
                host.hivectl("approve", m[1], timeout=600)
            elif m := re.match(r"→ question #(\d+)", line):
                host.hivectl("answer", m[1], "destroy it")
        assert tour.wait(60) == 0, "".join(said)
    finally:
        if tour.poll() is None:
            tour.kill()
            tour.wait()
    assert "destroyed" in "".join(said)
    assert all(not r["name"].startswith("tour") for r in host.hivectl("list")["agents"])
