"""The one-time upgrade of applied configs approved when every agent shared the host's network.

A `network` key absent from agent.toml meant "host" before and means "private" now. At the
first start of this version, every applied config without the key gets an explicit
`network = "host"` (committed by hive-c0re, with a comment saying why), so each agent keeps
the network it was approved with until the operator approves another; the operator is told
on the dashboard. A marker in the applied dir makes it run once: a config approved later
without the key is private.
"""

from __future__ import annotations

import os
import tomllib

from ..hive import log as hlog
from ..hive.agentconfig import CONFIG_FILE, ConfigError, parse
from ..hive.db import Notification, write_tx
from ..hive.names import InvalidName, validate_agent_name
from ..hive.paths import Paths
from ..hive.vocab import Network
from . import repos

COMMIT_MESSAGE = 'upgrade: network = "host" made explicit (the default when it was approved)'


def header(name: str) -> bytes:
    return (
        "# Added by the hyperhive upgrade: this config was approved when an agent without a\n"
        f"# `network` key shared the host's network, so {name} keeps it. Without the line an\n"
        '# agent is now private; "egress" with a list of domains is the contained choice.\n'
        'network = "host"\n\n'
    ).encode()


def keep_host_network(paths: Paths) -> list[str]:
    """Give every applied config without a `network` key an explicit `network = "host"`,
    once per hive; the agents it changed."""
    marker = paths.network_migrated
    if marker.exists():
        return []
    changed: list[str] = []
    root = paths.applied_dir
    for entry in sorted(root.iterdir()) if root.is_dir() else []:
        if entry.name.startswith(".") or not entry.is_dir() or entry.is_symlink():
            continue
        try:
            name = validate_agent_name(entry.name)
        except InvalidName:
            continue
        if _upgrade(paths, name):
            changed.append(name)
    root.mkdir(parents=True, exist_ok=True)
    tmp = marker.with_name(f".{marker.name}.tmp")
    tmp.write_text('applied configs without `network` were given network = "host" once\n')
    os.replace(tmp, marker)
    return changed


def _upgrade(paths: Paths, name: str) -> bool:
    repo = paths.applied_repo(name)
    blob = repos.applied_config(repo)
    if blob is None:
        return False
    try:
        if "network" in tomllib.loads(blob.decode("utf-8")):
            return False
        new = header(name) + blob
        if parse(new).network is not Network.HOST:
            raise ConfigError("the upgraded config does not read as network = host")
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, ConfigError) as e:
        hlog.log(
            f"the applied config of {name} was left as it is by the network upgrade: {e}",
            kind="lifecycle",
            agent=name,
            priority=hlog.WARNING,
        )
        return False
    files = {rel: (repo / rel).read_bytes() for rel in repos.tracked(repo)}
    repos.apply(repo, {**files, CONFIG_FILE: new}, COMMIT_MESSAGE)
    text = (
        f"{name} keeps the host network it was approved with: its applied config had no "
        f'`network` key (which meant "host" then and means "private" now), so the upgrade '
        f'wrote network = "host" into it; approve a config with "egress" or "private" to '
        "contain it"
    )
    with write_tx():
        Notification.create(kind="network_upgrade", agent=name, text=text)
    hlog.log(text, kind="lifecycle", agent=name, priority=hlog.WARNING)
    return True
