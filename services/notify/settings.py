"""hive-notify's settings, read once from the environment (see docs/notifications.md).

Only parsing and checking: nothing here opens a socket, a file or a channel.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from ..hive.channels import urls_from_env
from ..hive.paths import Paths
from ..hive.vocab import Notice

EVENTS_SETTING = "HIVE_NOTIFY_EVENTS"


class SettingsError(ValueError):
    """A setting that cannot work; the message names the variable and what to do."""


def parse_events(text: str | None) -> frozenset[Notice]:
    """HIVE_NOTIFY_EVENTS: the kinds to send, separated by spaces or commas (unset: all)."""
    words = (text or "").replace(",", " ").split()
    if not words or words == ["all"]:
        return frozenset(Notice)
    try:
        return frozenset(Notice(w) for w in words)
    except ValueError:
        unknown = next(w for w in words if w not in {str(n) for n in Notice})
        raise SettingsError(
            f"{EVENTS_SETTING} names {unknown!r}, which is not a notice: use any of "
            f"{', '.join(Notice)} (or leave it unset for all)"
        ) from None


def _seconds(e: Mapping[str, str], key: str, default: float, minimum: float = 0.0) -> float:
    raw = e.get(key)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{key}={raw!r} must be a number of seconds") from None
    if value < minimum:
        raise SettingsError(f"{key}={raw!r} must be at least {minimum:g} seconds")
    return value


@dataclass(frozen=True)
class NotifySettings:
    paths: Paths
    urls: tuple[str, ...]
    events: frozenset[Notice]
    public_url: str | None
    """HIVE_WEB_PUBLIC_URL: with it, notices carry action links (and the dashboard's address)."""
    quiet: float = 0.5
    """Seconds without a new notice that end a burst (it goes out as one message)."""
    gather_max: float = 5.0
    """A burst is sent at the latest this long after its first notice."""
    retry_first: float = 10.0
    retry_max: float = 900.0
    give_up: float = 86400.0
    """A notice not delivered this long after it was due is given up (and logged)."""
    safety_net: float = 60.0
    """Seconds between looks at the outbox when no doorbell rang."""
    batch_items: int = 10
    """Notices listed in full in one message; more are counted, with the dashboard's address."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> NotifySettings:
        e = dict(os.environ if env is None else env)
        public = (e.get("HIVE_WEB_PUBLIC_URL") or "").strip().rstrip("/") or None
        return cls(
            paths=Paths.from_env(e),
            urls=tuple(urls_from_env(e)),
            events=parse_events(e.get(EVENTS_SETTING)),
            public_url=public,
            quiet=_seconds(e, "HIVE_NOTIFY_QUIET", 0.5),
            gather_max=_seconds(e, "HIVE_NOTIFY_GATHER_MAX", 5.0),
            retry_first=_seconds(e, "HIVE_NOTIFY_RETRY_FIRST", 10.0, 0.05),
            retry_max=_seconds(e, "HIVE_NOTIFY_RETRY_MAX", 900.0, 0.05),
            give_up=_seconds(e, "HIVE_NOTIFY_GIVE_UP", 86400.0, 1.0),
            safety_net=_seconds(e, "HIVE_NOTIFY_SAFETY_NET", 60.0, 0.1),
        )

    def backoff(self, attempts: int) -> float:
        """Seconds before the next try after `attempts` failed ones (doubling, capped)."""
        return float(min(self.retry_first * 2 ** max(0, attempts - 1), self.retry_max))
