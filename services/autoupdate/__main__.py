"""hive-autoupdate: rebuild every stale container through the coordinator's `rebuild`.

Run once at start and whenever the installed platform changes (hive-autoupdate.path).
One failing rebuild does not stop the others; the exit status says whether all worked.
"""

from __future__ import annotations

import sys

from ..hive import log as hlog
from ..hive import sd
from ..hive.client import HiveClient, Refused, Unreachable
from ..hive.paths import Paths
from ..hive.platform import platform_rev
from .stale import stale_agents


def main(argv: list[str] | None = None) -> int:
    hlog.set_identifier("hive-autoupdate")
    paths = Paths.from_env()
    rev = platform_rev()
    try:
        with HiveClient(paths.admin_socket, timeout=None) as hive:
            stale = stale_agents(paths, hive.call("list")["agents"], rev)
            if not stale:
                hlog.log(f"every container is built from platform {rev[:12]}", kind="rebuild")
                return 0
            failed = []
            for i, name in enumerate(stale, 1):
                sd.status(f"rebuilding {name} ({i}/{len(stale)})")
                hlog.log(
                    f"rebuilding {name} ({i}/{len(stale)}) for platform {rev[:12]}",
                    kind="rebuild",
                    agent=name,
                )
                try:  # if the coordinator's own scan at start got there first: skipped
                    reply = hive.call("rebuild", name=name, if_stale=True)
                except Refused as e:
                    failed.append(name)
                    hlog.log(
                        f"rebuild of {name} refused: {e}",
                        kind="rebuild",
                        agent=name,
                        priority=hlog.ERR,
                    )
                    continue
                if reply.get("skipped"):
                    hlog.log(f"{name} was rebuilt already", kind="rebuild", agent=name)
                    continue
                if not reply.get("ok_build"):
                    failed.append(name)
                    hlog.log(
                        f"rebuild of {name} failed: {reply.get('note')}",
                        kind="rebuild",
                        agent=name,
                        priority=hlog.ERR,
                    )
    except Unreachable as e:
        hlog.log(str(e), kind="rebuild", priority=hlog.ERR)
        return 1
    done = len(stale) - len(failed)
    hlog.log(
        f"auto-update: {done} of {len(stale)} rebuilt"
        + (f"; failed: {', '.join(failed)}" if failed else ""),
        kind="rebuild",
        priority=hlog.ERR if failed else hlog.INFO,
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
