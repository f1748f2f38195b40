"""The host's `inet hyperhive` nftables table: loaded (replaced whole, atomically) by `nft`.

Owns only that table; never flushes the ruleset or touches another table.
"""

from __future__ import annotations

import ipaddress
import pwd
import shutil
import subprocess

from ..hive.egress import PROXY_USER, ruleset


class FirewallError(RuntimeError):
    pass


def proxy_uid() -> int:
    try:
        return pwd.getpwnam(PROXY_USER).pw_uid
    except KeyError:
        raise FirewallError(
            f"user {PROXY_USER} does not exist: run hivectl install (it adds it with "
            "systemd-sysusers)"
        ) from None


def load(subnet: ipaddress.IPv4Network) -> None:
    """Replace the table with the current rules in one nft transaction."""
    nft = shutil.which("nft") or "/usr/sbin/nft"
    out = subprocess.run(
        [nft, "-f", "-"],
        input=ruleset(proxy_uid(), subnet),
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise FirewallError(
            f"nft could not load the hyperhive table: {out.stderr.strip()} (is nftables "
            "installed? scripts/bootstrap installs it)"
        )
