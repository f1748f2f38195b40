"""Agents under user namespaces, in real nspawn containers of a booted sandbox host: root in a
container is an unprivileged uid on the host, yet the container writes its /state, reaches its
socket, and hm1nd still commits to a sub-agent's proposed repo; a state dir swapped for one
owned by another uid is refused; a hive from before user namespaces (root-owned trees, units
rendered without them) is moved over once when its coordinator restarts on the new code."""

from __future__ import annotations

import json
import re
import shlex

from tests.hivetest import REPO
from tests.system.hivehost import PY, VENV_BIN, HiveHost
from tests.system.test_hive_units import ensure_running

DB = "/var/lib/hyperhive/hive.db"
STATE = "/var/lib/hyperhive/agent-state"
AGENTS = "/var/lib/hyperhive/agents"
APPLIED = "/var/lib/hyperhive/applied"
MANAGER_SOCKET = "/run/hyperhive/manager/hive.sock"


def uid_map(host: HiveHost, pid: int) -> tuple[int, int, int]:
    inside, outside, count = host.sh(f"cat /proc/{pid}/uid_map").split()
    return int(inside), int(outside), int(count)


def base_of(host: HiveHost, agent: str) -> int:
    """The range the coordinator recorded for `agent` (a plain SELECT, as an operator would)."""
    query = f"SELECT base FROM uid_ranges WHERE agent = '{agent}'"
    code = f"import sqlite3; print(sqlite3.connect({DB!r}).execute({query!r}).fetchone()[0])"
    return int(host.sh(f"{PY} -c {shlex.quote(code)}").strip())


def inside(host: HiveHost, machine: str, script: str, *, check: bool = True) -> str:
    """Run `script` in `machine`'s container as its root, with the payload's environment."""
    pid = host.payload_pid(machine)
    env = host.environ(pid)
    keep = " ".join(
        shlex.quote(f"{k}={v}")
        for k, v in env.items()
        if k.startswith(("GIT_", "HOME", "PATH", "HIVE_"))
    )
    return host.sh(
        f"{host.in_container(pid)} env -i {keep} /bin/sh -c {shlex.quote(script)} 2>&1",
        check=check,
    )


def hive_call_inside(host: HiveHost, machine: str, cmd: str, **fields: object) -> dict[str, object]:
    """One request from inside the container, through the real client, on its own socket."""
    code = (
        "import json, os, sys\n"
        "from hyperhive.hive.client import HiveClient\n"
        "with HiveClient(os.environ['HIVE_SOCKET']) as c:\n"
        "    print(json.dumps(c.request(json.loads(sys.argv[1]))))\n"
    )
    req = json.dumps({"cmd": cmd, **fields})
    out = inside(host, machine, f"PYTHONPATH={REPO} {PY} -c {shlex.quote(code)} {shlex.quote(req)}")
    return dict(json.loads(out.strip().splitlines()[-1]))


def test_root_in_a_container_is_an_unprivileged_uid_on_the_host(host: HiveHost) -> None:
    ensure_running(host, "alice")
    pid = host.payload_pid("h-alice")
    base = base_of(host, "alice")
    assert uid_map(host, pid) == (0, base, 65536) and base >= 0x70000000
    assert host.sh(f"stat -c %u /proc/{pid}").strip() == str(base)  # the payload, seen from here
    # what root in the container makes is owned by that unprivileged uid on the host
    assert inside(host, "h-alice", "id -u && touch /state/made-inside").strip() == "0"
    assert host.sh(f"stat -c %u:%g {STATE}/alice/made-inside").strip() == f"{base}:{base}"
    # the manager's range is its own: no id of one container is an id of the other
    manager = base_of(host, "hm1nd")
    assert uid_map(host, host.payload_pid("hm1nd")) == (0, manager, 65536)
    assert abs(manager - base) >= 65536


def test_the_container_writes_state_reads_its_config_and_reaches_only_its_socket(
    host: HiveHost,
) -> None:
    ensure_running(host, "alice")
    out = inside(
        host,
        "h-alice",
        "echo note > /state/note && cat /state/note && head -c 0 /hive/applied/agent.toml && "
        "echo read-config",
    )
    assert out.split() == ["note", "read-config"]
    reply = hive_call_inside(host, "h-alice", "whoami")
    assert reply["name"] == "alice" and reply["role"] == "agent"
    # the socket dir is the hive's: the container connects, but plants nothing there
    planted = inside(host, "h-alice", "touch /run/hive/planted", check=False)
    assert "Permission denied" in planted
    assert host.sh("ls -A /run/hyperhive/agents/alice").split() == ["hive.sock"]


def test_the_manager_commits_to_a_sub_agents_repo_and_the_change_is_applied(
    host: HiveHost,
) -> None:
    ensure_running(host, "alice")
    host.manager_events()
    config = 'system_prompt = "x"\n[environment]\nCOLOUR = "plum"\n'  # what hm1nd writes
    script = (
        f"cd /agents/alice/config && printf %s {shlex.quote(config)} > agent.toml && "
        "git add agent.toml && git commit -qm 'plum, from inside hm1nd' && git rev-parse HEAD"
    )
    sha = inside(host, "hm1nd", script).strip().splitlines()[-1]
    manager = base_of(host, "hm1nd")
    repo = f"{AGENTS}/alice/config"
    assert host.sh(f"stat -c %u {repo}/agent.toml {repo}/.git/index").split() == [str(manager)] * 2
    # hm1nd asks from inside its container, on its own socket; the operator approves
    req = hive_call_inside(host, "hm1nd", "request_apply_commit", agent="alice", commit_ref=sha)
    assert req["ok"], req
    approval = host.hivectl("approve", str(req["id"]), timeout=600)["approval"]
    assert approval["status"] == "approved", approval
    pid = host.payload_pid("h-alice")
    assert host.environ(pid)["COLOUR"] == "plum"
    assert uid_map(host, pid)[1] == base_of(host, "alice")  # rebuilt, still namespaced
    kinds = [e["event"] for e in host.manager_events()]
    assert kinds == ["rebuilt", "approval_resolved"]
    # hm1nd can list /agents and write inside each repo, but not replace what holds them
    script = "ls /agents; mkdir /agents/evil; mv /agents/alice /agents/x"
    out = inside(host, "hm1nd", script, check=False)
    assert "alice" in out.split() and out.count("Permission denied") == 2
    assert host.sh(f"ls {AGENTS}").split() == sorted(["alice", "hm1nd"])


def _start_refusal(host: HiveHost, agent: str) -> str:
    out = host.sandbox.run(str(VENV_BIN / "hivectl"), "--json", "start", agent, check=False)
    assert out.returncode != 0, out.stdout
    return str(json.loads(out.stdout)["error"])


def test_a_state_dir_swapped_or_owned_by_someone_else_is_refused(host: HiveHost) -> None:
    ensure_running(host, "alice")
    host.hivectl("stop", "alice")
    alice, manager = base_of(host, "alice"), base_of(host, "hm1nd")
    state = f"{STATE}/alice"
    host.sh(f"mv {state} {state}.real")
    try:
        for owner in (manager, 4242):  # another agent's dir, a host user's dir
            host.sh(f"mkdir -m 0700 {state} && chown {owner}:{owner} {state}")
            why = _start_refusal(host, "alice")
            assert why == (
                f"alice's state dir agent-state/alice is owned by uid {owner}, not {alice}: "
                "move it away and try again (the hive only uses directories it made)"
            )
            assert host.sh(f"stat -c %u {state}").strip() == str(owner)  # left as it was
            host.sh(f"rmdir {state}")
    finally:
        host.sh(f"rm -rf {state} && mv {state}.real {state}")
    assert host.hivectl("start", "alice")["agent"]["state"] == "running"


def _render_as_before_user_namespaces(host: HiveHost, agent: str) -> None:
    """Make the applied drop-in what the code before user namespaces rendered."""
    conf = f"{APPLIED}/{agent}/hive-agent.conf"
    text = host.sh(f"cat {conf}")
    text = re.sub(r' "--(private-users|private-users-ownership|drop-capability)=[^"]*"', "", text)
    text = "".join(
        line + "\n"
        for line in text.splitlines()
        if not line.startswith(("ProtectSystem", "ProtectHome", "PrivateTmp", "ReadWritePaths"))
    )
    host.sandbox.run("/bin/sh", "-c", f"cat > {conf}", input=text)


def test_an_upgrade_moves_root_owned_trees_into_the_ranges_once(host: HiveHost) -> None:
    ensure_running(host, "alice")
    host.hivectl("stop", "alice")
    # the hive as the old code left it: units without user namespaces, trees owned by root
    for agent in ("alice", "hm1nd"):
        _render_as_before_user_namespaces(host, agent)
    state = f"{STATE}/alice"
    host.sh(
        f"chown -R 0:0 {state} {AGENTS}/alice/config {AGENTS}/hm1nd/config && "
        f"mkdir -p {state}/notes/deep && echo kept > {state}/notes/deep/n && "
        f"touch {state}/as-1000 && chown 1000:1000 {state}/as-1000 && "
        f"touch {state}/foreign && chown 200000:200000 {state}/foreign && "
        f"ln -s /etc/passwd {state}/to-host && mkfifo {state}/fifo"
    )
    passwd_before = host.sh("stat -c %u:%g:%a /etc/passwd")
    cursor = host.journal_cursor()
    host.sh("systemctl restart hive-coordinator.service")  # on the new code
    # its scan at start finds both rendered by older code, and rebuilds each once
    host.wait_journal("hm1nd rebuilt", "HIVE_AGENT=hm1nd", after=cursor, timeout=120)
    host.wait_journal("alice rebuilt", "HIVE_AGENT=alice", after=cursor, timeout=120)
    alice, manager = base_of(host, "alice"), base_of(host, "hm1nd")
    owners = host.sh(
        f"cd {state} && stat -c '%n %u:%g' . notes notes/deep notes/deep/n as-1000 foreign "
        "to-host fifo"
    )
    assert dict(line.split() for line in owners.splitlines()) == {
        ".": f"{alice}:{alice}",
        "notes": f"{alice}:{alice}",
        "notes/deep": f"{alice}:{alice}",
        "notes/deep/n": f"{alice}:{alice}",
        "as-1000": f"{alice + 1000}:{alice + 1000}",  # still uid 1000 inside
        "foreign": "200000:200000",  # no id of the container's: left, and logged
        "to-host": f"{alice}:{alice}",  # the link itself
        "fifo": f"{alice}:{alice}",
    }
    assert host.sh("stat -c %u:%g:%a /etc/passwd") == passwd_before  # never followed
    warned = host.wait_journal("kept their owner", "HIVE_AGENT=alice", after=cursor)
    assert "agent-state/alice/foreign" in warned
    assert host.sh(f"stat -c %u {AGENTS}/alice/config/agent.toml").strip() == str(manager)
    # both run under their ranges again, and work: alice starts, hm1nd commits
    assert host.hivectl("start", "alice")["agent"]["state"] == "running"
    assert uid_map(host, host.payload_pid("h-alice"))[1] == alice
    assert uid_map(host, host.payload_pid("hm1nd"))[1] == manager
    assert inside(host, "h-alice", "cat /state/notes/deep/n").strip() == "kept"
    inside(host, "hm1nd", "cd /agents/alice/config && git commit -q --allow-empty -m after")
    # once: a later start moves nothing again
    cursor = host.journal_cursor()
    host.hivectl("restart", "alice")
    host.hivectl("restart", "hm1nd")
    moved = host.sh(
        f"journalctl --after-cursor='{cursor}' -u hive-coordinator -o cat --no-pager", check=False
    )
    assert "now belongs to its container's uids" not in moved


def test_the_agent_unit_is_no_more_exposed_than_documented(host: HiveHost) -> None:
    out = host.sh("systemd-analyze security --no-pager hive-agent@hm1nd.service")
    m = re.search(r"Overall exposure level for hive-agent@hm1nd.service: ([0-9.]+)", out)
    assert m is not None, out
    assert float(m[1]) <= 5.0, out  # docs/operations.md: 9.6 before user namespaces, 5.0 after
