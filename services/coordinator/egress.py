"""An egress agent's slot, files and proxy unit, on the coordinator's side.

The slot (which /30 of HIVE_EGRESS_SUBNET) is recorded in the link file the agent's applied
repo holds: an agent keeps its slot across rebuilds, a new one takes the lowest slot no
applied repo records. Rendering runs on the coordinator's event loop thread and the file is
committed before the loop moves on, so two agents never pick the same slot. The runtime
copies under /run/hyperhive/egress/<name>/ are written atomically, never in an agent's reach.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..hive.agentconfig import AgentConfig
from ..hive.egress import (
    FILES,
    FILTER_FILE,
    LINK_FILE,
    PROXY_FILE,
    EgressSettingError,
    Link,
    link_for,
    render_filter,
    render_proxy,
    slot_of,
    slots,
    subnet_from_env,
)
from ..hive.names import machine_name
from ..hive.paths import Paths
from ..hive.protocol import Refusal
from ..hive.vocab import Code, Network
from . import units


class EgressError(Refusal):
    code = Code.UNAVAILABLE


def unit_name(agent: str) -> str:
    return f"hive-egress@{agent}.service"


def stop_proxy(agent: str) -> None:
    """Stop the agent's proxy unit if it runs (or failed); nothing if it never ran."""
    unit = unit_name(agent)
    if units.active_state(unit) != "inactive":
        units.stop(unit)


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except (FileNotFoundError, NotADirectoryError, UnicodeDecodeError):
        return None


def slot_for(paths: Paths, name: str) -> int:
    """`name`'s recorded slot, or the lowest one no other applied repo records."""
    own = slot_of(_read(paths.applied_repo(name) / LINK_FILE))
    if own is not None:
        return own
    taken: set[int] = set()
    if paths.applied_dir.is_dir():
        for entry in paths.applied_dir.iterdir():
            if entry.name != name and not entry.name.startswith("."):
                slot = slot_of(_read(entry / LINK_FILE))
                if slot is not None:
                    taken.add(slot)
    try:
        limit = slots(subnet_from_env())
    except EgressSettingError as e:
        raise EgressError(str(e)) from None
    free = next((s for s in range(limit) if s not in taken), None)
    if free is None:
        raise EgressError(
            f"every egress slot of the subnet is taken ({limit} agents): set a larger "
            "HIVE_EGRESS_SUBNET in hive.env"
        )
    return free


def link(paths: Paths, name: str) -> Link:
    try:
        return link_for(name, machine_name(name), slot_for(paths, name), subnet_from_env())
    except EgressSettingError as e:
        raise EgressError(str(e)) from None


def render(paths: Paths, name: str, config: AgentConfig) -> dict[str, bytes]:
    """The files an egress grant adds to the applied repo (none for other networks)."""
    if config.network is not Network.EGRESS:
        return {}
    got = link(paths, name)
    filter_path = paths.egress_dir(name) / FILTER_FILE
    return {
        LINK_FILE: got.render().encode(),
        PROXY_FILE: render_proxy(got, filter_path).encode(),
        FILTER_FILE: render_filter(config.egress).encode(),
    }


def install(paths: Paths, name: str, config: AgentConfig) -> None:
    """Copy the applied egress files to /run/hyperhive/egress/<name>/ (readable by the
    proxy's user), or remove that dir when the agent has no egress grant."""
    target = paths.egress_dir(name)
    if config.network is not Network.EGRESS:
        shutil.rmtree(target, ignore_errors=True)
        return
    for d in (paths.egress_root, target):  # the proxy's user reads them (umask is 0007)
        d.mkdir(exist_ok=True)
        os.chmod(d, 0o755)
    for rel in FILES:
        data = (paths.applied_repo(name) / rel).read_bytes()
        tmp = target / f".{rel}.tmp"
        tmp.write_bytes(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target / rel)


def remove(paths: Paths, name: str) -> None:
    shutil.rmtree(paths.egress_dir(name), ignore_errors=True)
