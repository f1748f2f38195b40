"""Network grants with real nspawn containers, in a sandbox host with a network of its own.

The sandbox boots with `private_network`: the agents' veths, the `inet hyperhive` table, the
proxies and the stand-in "internet" (a network namespace inside the sandbox holding
allowed.test and other.test at TEST-NET-2 addresses) live and die with it; the last check
is that nothing of them is left on this machine.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.system.hivehost import HiveHost, booted_hive
from tests.system.test_hive_units import apply_config

DASHBOARD = "127.0.0.1:7800"  # the sandbox's own loopback: no clash with this machine
WORK = "/run/hive-net-test"

SERVER = """\
import http.server, ssl, sys, threading
name, addr, certs = sys.argv[1], sys.argv[2], sys.argv[5]
port, tls_port = int(sys.argv[3]), int(sys.argv[4])
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"{name} says hello to {self.client_address[0]}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
if tls_port:
    tls = http.server.ThreadingHTTPServer((addr, tls_port), H)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(certs + "/cert.pem", certs + "/key.pem")
    tls.socket = ctx.wrap_socket(tls.socket, server_side=True)
    threading.Thread(target=tls.serve_forever, daemon=True).start()
http.server.ThreadingHTTPServer((addr, port), H).serve_forever()
"""

CLIENT = """\
import json, os, socket, ssl, sys, urllib.error, urllib.request
def fetch(url, proxy):
    handlers = [urllib.request.HTTPSHandler(context=ssl._create_unverified_context())]
    if proxy:
        handlers.append(urllib.request.ProxyHandler({"http": proxy, "https": proxy}))
    try:
        with urllib.request.build_opener(*handlers).open(url, timeout=20) as r:
            return {"status": r.status, "body": r.read().decode()}
    except urllib.error.HTTPError as e:
        return {"status": e.code, "body": e.read().decode(errors="replace")[:300]}
    except OSError as e:
        return {"error": f"{type(e).__name__}: {e}"}
def connect(host, port, timeout):
    s = socket.socket()
    s.settimeout(timeout)
    try:
        s.connect((host, int(port)))
        return {"connected": True}
    except socket.timeout:
        return {"error": "timeout"}
    except OSError as e:
        return {"error": os.strerror(e.errno) if e.errno else str(e)}
    finally:
        s.close()
mode = sys.argv[1]
if mode == "fetch":
    proxy = os.environ.get("https_proxy") if sys.argv[3] == "env" else sys.argv[3]
    print(json.dumps(fetch(sys.argv[2], proxy)))
else:
    print(json.dumps(connect(sys.argv[2], sys.argv[3], float(sys.argv[4]))))
"""


def _machine_has_no_trace() -> None:
    """What the sandbox made stays in its network namespace: none of it on this machine."""
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert not re.search(r"^\d+: (hv-|inet0)", links, re.MULTILINE), links
    nft = shutil.which("nft")
    if nft is not None:
        out = subprocess.run([nft, "list", "tables"], capture_output=True, text=True)
        assert "hyperhive" not in out.stdout, out.stdout


@pytest.fixture(scope="module")
def h(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HiveHost]:
    settings = {"HIVE_AGENT_COMMAND": "/bin/sleep infinity", "HIVE_WEB_LISTEN": DASHBOARD}
    log_dir = tmp_path_factory.mktemp("nethost")
    with booted_hive(log_dir, settings=settings, private_network=True) as host:
        _machine_has_no_trace()  # booted: still nothing here
        _stand_in_internet(host)
        yield host
    _machine_has_no_trace()  # powered off: nothing left


def _stand_in_internet(h: HiveHost) -> None:
    """allowed.test and other.test on a namespace of their own behind inet0 (a router hop
    away, as the internet is), loopback.test naming the sandbox's loopback, and a service
    on every address of the sandbox itself."""
    h.sh(f"mkdir -p {WORK}")
    h.sandbox.run("/bin/sh", "-c", f"cat > {WORK}/server.py", input=SERVER)
    h.sandbox.run("/bin/sh", "-c", f"cat > {WORK}/client.py", input=CLIENT)
    h.sandbox.run(
        "/bin/sh", "-c", f"cat > {WORK}/openssl.cnf", input="[req]\ndistinguished_name=dn\n[dn]\n"
    )
    h.sh(
        f"openssl req -config {WORK}/openssl.cnf -x509 -newkey rsa:2048 -nodes -days 1 "
        f"-subj /CN=allowed.test -keyout {WORK}/key.pem -out {WORK}/cert.pem 2>&1"
    )
    h.sh(
        "ip netns add hive-inet && "
        "ip link add inet0 type veth peer name eth0 netns hive-inet && "
        "ip address add 198.51.100.1/24 dev inet0 && ip link set inet0 up && "
        "ip -n hive-inet address add 198.51.100.10/24 dev eth0 && "
        "ip -n hive-inet address add 198.51.100.11/24 dev eth0 && "
        "ip -n hive-inet link set eth0 up && ip -n hive-inet link set lo up"
    )
    h.sandbox.run(
        "/bin/sh",
        "-c",
        "cat > /etc/hosts && echo 'hosts: files' > /etc/nsswitch.conf",
        input=(
            "127.0.0.1 localhost\n198.51.100.10 allowed.test\n198.51.100.11 other.test\n"
            "127.0.0.1 loopback.test\n"
        ),
    )
    servers = [
        ("allowed", "ip netns exec hive-inet", "198.51.100.10", 80, 443),
        ("other", "ip netns exec hive-inet", "198.51.100.11", 80, 443),
        ("loopback", "", "127.0.0.1", 8080, 0),  # only on the sandbox's loopback
        ("everywhere", "", "0.0.0.0", 8081, 0),  # every address of the sandbox
    ]
    for name, prefix, addr, port, tls in servers:
        h.sh(
            f"systemd-run -q --unit=test-server-{name} {prefix} /usr/bin/python3 "
            f"{WORK}/server.py {name} {addr} {port} {tls} {WORK}"
        )
    for addr, port in (("198.51.100.10", 443), ("198.51.100.11", 80), ("127.0.0.1", 8081)):
        _wait(lambda a=addr, p=port: _sandbox_connects(h, a, p), f"test server {addr}:{port}")


def _wait(ok: Any, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not ok():
        assert time.monotonic() < deadline, f"{what} not ready in {timeout} s"
        time.sleep(0.2)


def _sandbox_connects(h: HiveHost, addr: str, port: int) -> bool:
    out = h.sandbox.run("/usr/bin/python3", f"{WORK}/client.py", "connect", addr, str(port), "2")
    return bool(json.loads(out.stdout).get("connected"))


def _inside(h: HiveHost, agent: str, *args: str) -> dict[str, Any]:
    """Run the client in every namespace of the agent's container (as its payload runs),
    with the proxy settings its payload has."""
    pid = h.payload_pid(f"h-{agent}")
    env = {k: v for k, v in h.environ(pid).items() if k.lower().endswith("_proxy")}
    out = h.sandbox.run(
        "nsenter",
        "-t",
        str(pid),
        "-a",
        "/usr/bin/python3",
        "-",
        *args,
        input=CLIENT,
        env=env or None,
        timeout=120,
    )
    return dict(json.loads(out.stdout))


def _counter(h: HiveHost, name: str) -> int:
    out = h.sh(f"nft list counter inet hyperhive {name}")
    m = re.search(r"packets (\d+)", out)
    assert m, out
    return int(m.group(1))


def _spawn(h: HiveHost, name: str, config: str | None) -> None:
    h.hivectl("spawn", name)
    if config is not None:
        apply_config(h, config, agent=name)


EGRESS = 'system_prompt = "x"\nnetwork = "egress"\negress = [{}]\n'


def test_a_default_agent_has_only_loopback_and_reaches_nothing_of_the_host(h: HiveHost) -> None:
    _spawn(h, "quiet", None)  # the template: network not given, so private
    pid = h.payload_pid("h-quiet")
    assert h.sh(f"nsenter -t {pid} -n ip -o link | cut -d: -f2").split() == ["lo"]
    for addr, port in (("127.0.0.1", 7800), ("127.0.0.1", 8080), ("198.51.100.10", 80)):
        got = _inside(h, "quiet", "connect", addr, str(port), "5")
        assert "connected" not in got, (addr, port, got)
    # the dashboard and the loopback server are up: it is the namespace that keeps them away
    assert _sandbox_connects(h, "127.0.0.1", 7800) and _sandbox_connects(h, "127.0.0.1", 8080)
    assert not any(k.lower().endswith("_proxy") for k in h.environ(pid))


def test_egress_reaches_listed_names_through_its_proxy_and_nothing_else(h: HiveHost) -> None:
    _spawn(h, "fetcher", EGRESS.format('"allowed.test", "loopback.test"'))
    assert h.unit_prop("hive-egress@fetcher.service", "ActiveState") == "active"
    pid = h.payload_pid("h-fetcher")
    env = h.environ(pid)
    assert env["HTTPS_PROXY"] == env["http_proxy"] == "http://10.77.0.1:3128", env
    _wait(
        lambda: "status" in _inside(h, "fetcher", "fetch", "http://allowed.test/", "env"), "proxy"
    )

    # a listed name, plain and through CONNECT (TLS end to end)
    got = _inside(h, "fetcher", "fetch", "http://allowed.test/", "env")
    assert got == {"status": 200, "body": "allowed says hello to 198.51.100.1"}, got
    got = _inside(h, "fetcher", "fetch", "https://allowed.test/", "env")
    assert got == {"status": 200, "body": "allowed says hello to 198.51.100.1"}, got

    # a name not on the list: the proxy refuses it (403 "Filtered"), plain or CONNECT
    got = _inside(h, "fetcher", "fetch", "http://other.test/", "env")
    assert got["status"] == 403 and "Filtered" in got["body"], got
    got = _inside(h, "fetcher", "fetch", "https://other.test/", "env")
    assert "403" in got.get("error", ""), got

    # a listed name that resolves to the host's loopback (DNS rebinding): the proxy may not
    # connect to any address of the host, so neither the dashboard nor a loopback server
    refused = _counter(h, "proxy_refused")
    for port in (7800, 8080):
        got = _inside(h, "fetcher", "fetch", f"http://loopback.test:{port}/", "env")
        assert got.get("status", 0) >= 500 and "says hello" not in got.get("body", ""), got
    assert _counter(h, "proxy_refused") > refused

    # around the proxy: the agent routes by itself (it may, in its own namespace); whatever
    # leaves its veth for anything but its proxy's port is dropped by the host
    dropped = _counter(h, "agent_dropped")
    h.sh(f"nsenter -t {pid} -n ip route replace default via 10.77.0.1")
    for addr, port in (("198.51.100.10", 80), ("10.77.0.1", 8081), ("10.77.0.1", 7800)):
        got = _inside(h, "fetcher", "connect", addr, str(port), "3")
        assert got == {"error": "timeout"}, (addr, port, got)
    assert _counter(h, "agent_dropped") >= dropped + 3
    # the dashboard on the host's loopback is not even routable from the veth
    assert "connected" not in _inside(h, "fetcher", "connect", "127.0.0.1", "7800", "3")


def test_one_agent_cannot_use_another_agents_proxy(h: HiveHost) -> None:
    _spawn(h, "other", EGRESS.format('"other.test"'))
    other = h.environ(h.payload_pid("h-other"))["HTTPS_PROXY"]
    assert other != h.environ(h.payload_pid("h-fetcher"))["HTTPS_PROXY"]
    _wait(lambda: "status" in _inside(h, "other", "fetch", "http://other.test/", "env"), "proxy")
    assert _inside(h, "other", "fetch", "http://other.test/", "env")["status"] == 200
    got = _inside(h, "fetcher", "fetch", "http://other.test/", other)  # the fetcher, bob's proxy
    assert "error" in got and "says hello" not in json.dumps(got), got


def test_the_proxy_follows_a_rebuild_and_goes_with_the_grant(h: HiveHost) -> None:
    apply_config(h, EGRESS.format('"other.test"'), agent="fetcher")
    _wait(lambda: "status" in _inside(h, "fetcher", "fetch", "http://other.test/", "env"), "proxy")
    assert _inside(h, "fetcher", "fetch", "http://other.test/", "env")["status"] == 200
    assert _inside(h, "fetcher", "fetch", "http://allowed.test/", "env")["status"] == 403
    applied = "/var/lib/hyperhive/applied/fetcher"
    assert "other" in h.sh(f"cat {applied}/egress.filter")
    assert h.sh("cat /run/hyperhive/egress/fetcher/egress.filter") == h.sh(
        f"cat {applied}/egress.filter"
    )

    apply_config(h, 'system_prompt = "x"\nnetwork = "private"\n', agent="fetcher")
    assert h.unit_prop("hive-egress@fetcher.service", "ActiveState") == "inactive"
    assert h.sh(f"ls {applied}").split() == ["agent.toml", "hive-agent.conf"]
    assert h.sh("test -e /run/hyperhive/egress/fetcher || echo gone").strip() == "gone"
    assert "hv-fetcher" not in h.sh("ip -o link")
    pid = h.payload_pid("h-fetcher")
    assert h.sh(f"nsenter -t {pid} -n ip -o link | cut -d: -f2").split() == ["lo"]


def test_the_egress_unit_verifies_clean(h: HiveHost) -> None:
    out = h.sandbox.run(
        "systemd-analyze",
        "verify",
        "hive-egress@other.service",
        "hive-agent@other.service",
        check=False,
    )
    assert out.returncode == 0 and out.stderr.strip() == "", out.stderr


def test_nothing_is_left_on_this_machine_while_the_sandbox_runs(h: HiveHost) -> None:
    assert "hv-other" in h.sh("ip -o link")  # it is there, inside
    _machine_has_no_trace()
