"""`hivectl notify-test`: one test notification to each URL of HIVE_NOTIFY_URLS, sent from
here, and one line per URL saying whether it worked (never the URL itself: it holds tokens).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from ..hive.channels import URLS_SETTING, channels, parse_urls


def env_file_value(path: Path, key: str) -> str | None:
    """`key`'s value in a systemd EnvironmentFile (KEY=VALUE lines), None when absent."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return None
    value = None
    for line in lines:
        text = line.strip()
        if text.startswith(("#", ";")) or "=" not in text:
            continue
        name, _, raw = text.partition("=")
        if name.strip() == key:
            raw = raw.strip()
            if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
                raw = raw[1:-1]
            value = raw
    return value


def run(env: Mapping[str, str], env_file: Path, say: Callable[[str], None]) -> int:
    """Exit 0 when every URL took its test notification, 1 otherwise (or when none is set)."""
    text = env.get(URLS_SETTING)
    where = "the environment"
    if text is None:
        text = env_file_value(env_file, URLS_SETTING)
        where = str(env_file)
    urls = parse_urls(text)
    if not urls:
        say(
            f"hivectl: no {URLS_SETTING} in {where}: add apprise URLs there (space-separated), "
            "e.g. HIVE_NOTIFY_URLS=ntfys://ntfy.sh/my-hive, then restart hive-notify"
        )
        return 1
    host = socket.gethostname()
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    failed = 0
    for channel in channels(urls):
        cause = channel.send(
            "hyperhive: test notification",
            f"hivectl notify-test on {host} at {stamp}: URL {channel.index} ({channel.label}) "
            "reaches you.",
        )
        if cause is None:
            say(f"URL {channel.index} ({channel.label}): ok")
        else:
            failed += 1
            say(f"URL {channel.index} ({channel.label}): failed: {cause}")
    say(f"{len(urls) - failed} of {len(urls)} URLs work")
    return 0 if not failed else 1
