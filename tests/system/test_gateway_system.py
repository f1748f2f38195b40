"""The model gateway as a unit in a booted host: the real harness in a real nspawn container
with the default config (a private network, its own user namespace) completes a tool-use
turn through it against the Messages API stand-in (running here: the gateway reaches it on
the network the sandbox shares; the container reaches only its gateway socket), the usage
the gateway recorded for it is the stand-in's usage blocks for it exactly, and the API key
is nowhere in the container: not in its processes' environments, its files, what its tools
see, nor its unit and drop-in.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator

import pytest

from tests.fakeapi import FakeAnthropic, Reply, Request, text, tool
from tests.hivetest import REPO
from tests.system.hivehost import HiveHost, booted_hive

KEY = "sk-ant-system-test-key-7f3a9c"
DB = "/var/lib/hyperhive/hive.db"


LOOK = (
    "env; for f in /proc/[0-9]*/environ; do tr '\\0' '\\n' < $f; done; "
    "ls -la /state /run/hive-gateway; echo NET $(ls /sys/class/net); "
    "echo UIDMAP $(cat /proc/self/uid_map)"
)
"""What alice's tool call runs in its container: every environment its processes have, its
gateway dir, its network links and its user namespace's map."""


def model(req: Request) -> Reply:
    """alice answers "look around" with one bash command, then a text; all else is noted."""
    last = req.messages[-1]["content"]
    if isinstance(last, list) and any(b.get("type") == "tool_result" for b in last):
        return text("I looked around")
    if "You are alice" in req.system_text and "look around" in req.text():
        return tool("bash", command=LOOK)
    return text("noted")


def asker(req: Request) -> str:
    """The agent whose harness sent `req`: its system prompt names it."""
    found = re.match(r"You are ([a-z][a-z0-9-]*),", req.system_text)
    assert found, req.system_text[:200]
    return found.group(1)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[HiveHost, FakeAnthropic]]:
    """The hive installed with the real harness in every container; the gateway's key and
    upstream (the stand-in) in credentials.env, as an operator puts them."""
    with (
        FakeAnthropic(api_key=KEY, default=model) as fake,
        booted_hive(tmp_path_factory.mktemp("gateway"), settings={}) as host,
    ):
        host.sandbox.run(
            "/bin/sh",
            "-c",
            "umask 077; cat > /etc/hyperhive/credentials.env",
            input=f"ANTHROPIC_API_KEY={KEY}\nANTHROPIC_BASE_URL={fake.url}\n",
        )
        host.sh("systemctl restart hive-gateway.service")
        yield host, fake


def usage(host: HiveHost) -> list[dict[str, object]]:
    out = host.sandbox.run(
        "sqlite3", "-json", "-cmd", ".timeout 10000", DB, "SELECT * FROM usage ORDER BY id"
    ).stdout
    return list(json.loads(out)) if out.strip() else []


def container_pids(host: HiveHost, unit: str) -> list[int]:
    """Every process in the unit's cgroup (nspawn, the container's init, the harness, its
    children), as /proc says."""
    out = host.sh(f"grep -l '/{unit}' /proc/[0-9]*/cgroup 2>/dev/null || true")
    return sorted(int(line.split("/")[2]) for line in out.split())


def test_the_gateway_unit_is_ready_verified_and_says_what_it_serves(
    live: tuple[HiveHost, FakeAnthropic],
) -> None:
    host, fake = live
    assert host.unit_prop("hive-gateway.service", "ActiveState") == "active"
    assert host.unit_prop("hive-gateway.service", "Type") == "notify"
    status = host.unit_prop("hive-gateway.service", "StatusText")
    assert status.startswith("serving ") and "key ok (ANTHROPIC_API_KEY)" in status, status
    assert fake.url in status
    out = host.sandbox.run(
        "systemd-analyze", "verify", "hive-gateway.service", "hyperhive.target", check=False
    )
    assert out.returncode == 0 and out.stderr.strip() == "", out.stderr
    assert host.unit_prop("hive-gateway.service", "User") == "hive-gateway"
    assert host.unit_prop("hive-gateway.service", "WatchdogUSec") == "30s"


def test_the_gateway_unit_is_no_more_exposed_than_documented(
    live: tuple[HiveHost, FakeAnthropic],
) -> None:
    host, _ = live
    out = host.sh("systemd-analyze security --no-pager hive-gateway.service")
    m = re.search(r"Overall exposure level for hive-gateway.service: ([0-9.]+)", out)
    assert m is not None, out
    assert float(m[1]) <= 1.3, out  # docs/operations.md


def test_a_tool_use_turn_in_a_default_container_goes_through_the_gateway_and_no_key_is_inside(
    live: tuple[HiveHost, FakeAnthropic],
) -> None:
    host, fake = live
    host.hivectl("spawn", "alice")  # its config is the default one: no network, its own uids
    cursor = host.journal_cursor()
    host.hivectl("send", "alice", "please look around")
    host.wait_journal("turn ended: I looked around", "HIVE_AGENT=alice", after=cursor, timeout=180)
    row = host.hivectl("status", "alice")["agents"][0]
    result = fake.wait_for(lambda r: "You are alice" in r.system_text and bool(r.tool_results()))
    # the turn: a tool call run in the container, and its answer, through the gateway
    seen_by_tools = json.dumps(result.tool_results())
    assert "HIVE_GATEWAY_SOCKET=/run/hive-gateway/api.sock" in seen_by_tools
    assert "api.sock" in seen_by_tools  # the socket is there, bound read-only
    assert result.headers["x-api-key"] == KEY and "authorization" not in result.headers
    assert row["turn"]["state"] == "idle" and row["turn"]["output_tokens"] > 0
    # ... from a container with no network but its loopback, whose root is not the host's
    assert "NET lo\\n" in seen_by_tools, seen_by_tools
    base = host.sh(f"sqlite3 {DB} \"SELECT base FROM uid_ranges WHERE agent = 'alice'\"").strip()
    assert int(base) > 0
    assert f"UIDMAP 0 {base} 65536" in seen_by_tools, seen_by_tools
    harness = host.payload_pid("h-alice")
    assert host.sh(f"stat -c %u /proc/{harness}").strip() == base

    # the key is in no process of the container (seen from the host, and from inside by
    # the tool, which printed every /proc/*/environ there), nor in what its tool printed
    pids = container_pids(host, "hive-agent@alice.service")
    assert harness in pids and len(pids) >= 2  # nspawn's stub init and the harness at least
    for pid in pids:
        environ = host.sh(f"cat /proc/{pid}/environ | tr '\\0' '\\n'", check=False)
        assert KEY not in environ and "ANTHROPIC_" not in environ, (pid, environ)
    assert KEY not in seen_by_tools and "ANTHROPIC_" not in seen_by_tools
    # nor in its files: the container's own view of every writable or bound tree
    leader = host.sh("machinectl show --property=Leader --value h-alice").strip()

    def grep(needle: str) -> list[str]:
        out = host.sh(
            f"nsenter -t {leader} -m -- grep -rlsF -D skip -e '{needle}' "
            "/state /run /tmp /var /etc /hive /root /home; true"
        )
        # the hive's own code is bound read-only too (a checkout under /tmp, in CI): this
        # very file holds the key; it is the test's, not anything the container was given
        return [p for p in out.split() if not p.startswith(f"{REPO}/")]

    # (the search sees the container's files: the tool's output is in its conversation)
    assert "/state/conversation.json" in grep("HIVE_GATEWAY_SOCKET=/run/hive-gateway")
    assert grep(KEY) == []
    # its gateway dir is read-only inside: nothing can be planted or replaced there
    planted = host.sandbox.run(
        *host.in_container(harness).split(), "touch", "/run/hive-gateway/planted", check=False
    )
    assert planted.returncode != 0 and "Read-only file system" in planted.stderr

    # nor in its unit, drop-in included, nor the environment systemd gives it
    unit = host.sh("systemctl cat hive-agent@alice.service")
    assert "--private-network" in unit and f"--private-users={base}:65536" in unit
    assert KEY not in unit and "credentials.env" not in unit and "ANTHROPIC_" not in unit
    assert KEY not in host.unit_prop("hive-agent@alice.service", "Environment")
    assert "EnvironmentFile" not in host.sh(
        "systemctl show hive-agent@alice.service -p EnvironmentFiles"
    )

    # what the gateway recorded for alice is what the stand-in sent her, exactly: the gateway
    # writes a response's row before the harness reads its end, so her turn's end is enough
    rows = usage(host)
    assert rows and all(r["complete"] for r in rows)
    for agent in {str(r["agent"]) for r in rows} | {"alice"}:
        recorded = sorted(tokens(r) for r in rows if r["agent"] == agent)
        sent = sorted(
            (u["input_tokens"], u["output_tokens"],
             u["cache_creation_input_tokens"], u["cache_read_input_tokens"])
            for r in list(fake.requests) if asker(r) == agent and (u := r.usage) is not None
        )  # fmt: skip
        if agent == "alice":
            assert recorded == sent and len(recorded) >= 2
        else:  # hm1nd may be mid-answer: each of its rows is one the stand-in sent it
            assert not Counter(recorded) - Counter(sent), (agent, recorded, sent)
    alices = [r for r in rows if r["agent"] == "alice"]
    assert {r["turn"] for r in alices} == {row["turn"]["turn"]}
    assert row["turn"]["cost_usd"] == pytest.approx(
        sum(float(r["cost_usd"]) for r in alices), abs=1e-6
    )  # type: ignore[arg-type]


def tokens(row: dict[str, object]) -> tuple[object, ...]:
    return tuple(
        row[k] for k in ("input_tokens", "output_tokens", "cache_write_tokens", "cache_read_tokens")
    )


def test_a_local_user_on_the_host_cannot_reach_an_agents_gateway_socket(
    live: tuple[HiveHost, FakeAnthropic],
) -> None:
    host, _ = live
    host.hivectl("spawn", "bob")
    sock = "/run/hyperhive/gateway/bob/api.sock"
    host.sh(f"test -S {sock}")  # it is there, served
    code = (
        "import socket, sys\n"
        "s = socket.socket(socket.AF_UNIX)\n"
        "try:\n"
        "    s.connect(sys.argv[1])\n"
        "except PermissionError:\n"
        "    print('refused')\n"
        "else:\n"
        "    print('connected')\n"
    )
    out = host.sandbox.run(
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "/usr/bin/python3",
        "-c",
        code,
        sock,
    )
    assert out.stdout.strip() == "refused"
    assert host.sh("stat -c %a /run/hyperhive/gateway").strip() == "700"
