"""One egress agent's veth, after systemd-nspawn made it: addresses on both ends, the host's
side kept from forwarding and from IPv6, the agent's side with no route beyond its /30.

Runs as root from `hive-egress@NAME.service` (ExecStartPre=+); idempotent, so a restart of
the proxy sets the same link up again.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from ..hive.egress import AGENT_IFNAME, Link

WAIT = 10.0


class LinkError(RuntimeError):
    pass


def _run(*argv: str) -> str:
    out = subprocess.run(argv, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise LinkError(f"{' '.join(argv)} failed: {out.stderr.strip() or out.stdout.strip()}")
    return out.stdout


def _sysctl(path: str, value: str) -> None:
    Path("/proc/sys", path).write_text(value)


def leader(machine: str) -> int:
    """The PID of the container's init, from machined."""
    out = _run("machinectl", "show", "--property=Leader", "--value", machine).strip()
    if not out.isdigit() or int(out) <= 1:
        raise LinkError(f"machined knows no running container {machine}")
    return int(out)


def wait_for(ifname: str, machine: str) -> None:
    deadline = time.monotonic() + WAIT
    while not Path("/sys/class/net", ifname).exists():
        if time.monotonic() > deadline:
            raise LinkError(
                f"the veth {ifname} of {machine} did not appear in {WAIT:.0f} s: is the agent's "
                "container running with its egress drop-in?"
            )
        time.sleep(0.05)


def up(link: Link) -> None:
    wait_for(link.ifname, link.machine)
    host_if = link.ifname
    # no IPv6 at all on the host's side (no link-local to talk to), and nothing that comes
    # in on it is ever forwarded, whatever the host's global forwarding setting says
    _sysctl(f"net/ipv6/conf/{host_if}/disable_ipv6", "1")
    _sysctl(f"net/ipv4/conf/{host_if}/forwarding", "0")
    _sysctl(f"net/ipv4/conf/{host_if}/accept_redirects", "0")
    _sysctl(f"net/ipv4/conf/{host_if}/send_redirects", "0")
    _run("ip", "address", "replace", link.host.with_prefixlen, "dev", host_if)
    _run("ip", "link", "set", host_if, "up")
    pid = str(leader(link.machine))
    inside = ("nsenter", "--target", pid, "--net", "--")
    _run(*inside, "ip", "link", "set", "lo", "up")
    _run(*inside, "ip", "address", "replace", link.inside.with_prefixlen, "dev", AGENT_IFNAME)
    _run(*inside, "ip", "link", "set", AGENT_IFNAME, "up")
