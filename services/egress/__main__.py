"""`hive-egress up NAME`: load the host's firewall table and set NAME's veth up, from the
link file the coordinator copied to /run/hyperhive/egress/NAME/ (ExecStartPre=+ of
hive-egress@NAME.service, before its tinyproxy starts)."""

from __future__ import annotations

import sys

from ..hive import log as hlog
from ..hive.egress import LINK_FILE, EgressSettingError, parse_link, subnet_from_env
from ..hive.names import InvalidName, validate_agent_name
from ..hive.paths import Paths
from . import firewall, link

USAGE = "usage: hive-egress up NAME"


def main(argv: list[str] | None = None) -> int:
    hlog.set_identifier("hive-egress")
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] != "up":
        print(USAGE, file=sys.stderr)
        return 2
    try:
        name = validate_agent_name(args[1])
        path = Paths.from_env().egress_dir(name) / LINK_FILE
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise link.LinkError(
                f"{path} is missing: {name} has no egress grant applied (hivectl rebuild {name})"
            ) from None
        got = parse_link(text)
        firewall.load(subnet_from_env())
        link.up(got)
    except (InvalidName, EgressSettingError, firewall.FirewallError, link.LinkError, OSError) as e:
        hlog.log(f"egress of {args[1]} not set up: {e}", kind="lifecycle", priority=hlog.ERR)
        print(f"hive-egress: {e}", file=sys.stderr)
        return 1
    hlog.log(
        f"egress of {name}: {got.ifname} {got.host} ↔ {got.inside}, proxy {got.proxy_url}",
        kind="lifecycle",
        agent=name,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
