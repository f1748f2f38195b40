"""The operator's notification channels: the apprise URLs of HIVE_NOTIFY_URLS, one apprise
object per URL, and a send that says whether it worked and, if not, why.

A URL often holds a token or a password: it is never logged, stored or returned. A channel
is named by its scheme (`ntfy`, `json`, `ntfy#2` when the scheme repeats) and keyed by a hash
of its URL. Used by hive-notify and by `hivectl notify-test`.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

URLS_SETTING = "HIVE_NOTIFY_URLS"


def parse_urls(text: str | None) -> list[str]:
    """HIVE_NOTIFY_URLS: apprise URLs separated by spaces (or new lines)."""
    return [u for u in (text or "").split() if u]


def urls_from_env(env: Mapping[str, str]) -> list[str]:
    return parse_urls(env.get(URLS_SETTING))


@dataclass
class Channel:
    """One apprise URL; `label` and `key` name it, the URL itself never leaves this object."""

    index: int
    label: str
    key: str
    url: str = field(repr=False)
    problem: str | None = None
    """Why apprise cannot use the URL (None: it can)."""
    _apprise: Any = field(default=None, repr=False)

    def send(self, title: str, body: str, *, urgent: bool = False) -> str | None:
        """Send one message; None when the channel took it, else the cause in one line."""
        if self.problem is not None:
            return self.problem
        import apprise  # type: ignore[import-untyped]

        notify_type = apprise.NotifyType.WARNING if urgent else apprise.NotifyType.INFO
        try:
            result = self._apprise.notify(
                body=body,
                title=title,
                notify_type=notify_type,
                body_format=apprise.NotifyFormat.TEXT,
            )
        except Exception as e:  # a plugin's bug must not take the sender down
            return redact(f"{type(e).__name__}: {e}", self.url)
        if result:
            return None
        said = [
            str(entry.message).strip()
            for entry in result.logs()
            if str(entry.level) in ("WARNING", "ERROR", "CRITICAL") and str(entry.message).strip()
        ]
        cause = "; ".join(dict.fromkeys(said)) or "the service refused it (no reason given)"
        return redact(cause, self.url)


def _label(scheme: str, seen: dict[str, int]) -> str:
    seen[scheme] = seen.get(scheme, 0) + 1
    return scheme if seen[scheme] == 1 else f"{scheme}#{seen[scheme]}"


def channels(urls: list[str]) -> list[Channel]:
    """A channel per URL, each with its own apprise object (so its pace is its own)."""
    import apprise

    asset = apprise.AppriseAsset(
        app_id="hyperhive",
        app_desc="hyperhive notifications",
        app_url="",
        image_url_mask="",
        image_url_logo="",
        secure_logging=True,
    )
    seen: dict[str, int] = {}
    out = []
    for i, url in enumerate(urls, start=1):
        scheme = (urlsplit(url).scheme or "url").lower()
        clean = "".join(c for c in scheme if c.isalnum())[:20] or "url"
        channel = Channel(
            index=i,
            label=_label(clean, seen),
            key=hashlib.sha256(url.encode("utf-8", "replace")).hexdigest()[:16],
            url=url,
        )
        a = apprise.Apprise(asset=asset)
        with _Capture() as captured:
            added = a.add(url)
        if not added:
            channel.problem = redact(
                f"URL {i} ({clean}) is not one apprise can use"
                + (f": {captured.cause()}" if captured.cause() else "")
                + " (see apprise's list of services)",
                url,
            )
        channel._apprise = a
        out.append(channel)
    return out


def redact(text: str, url: str) -> str:
    """`text` without the URL or any secret-looking part of it (user, password, path, query)."""
    parts = urlsplit(url)
    secrets: set[str] = {url}
    if parts.username:
        secrets.add(unquote(parts.username))
    if parts.password:
        secrets.add(unquote(parts.password))
    secrets.update(seg for seg in parts.path.split("/") if len(seg) >= 6)
    secrets.update(v for _, v in parse_qsl(parts.query) if len(v) >= 6)
    for secret in sorted(secrets, key=len, reverse=True):
        if secret:
            text = text.replace(secret, "…")
    return " ".join(text.split())[:400]


class _Capture(logging.Handler):
    """Apprise's warnings on this thread while a URL is parsed: why it cannot be used."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.thread = threading.get_ident()
        self.lines: list[str] = []
        self._logger = logging.getLogger("apprise")
        self._level = self._logger.level

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            self.lines.append(record.getMessage())

    def cause(self) -> str:
        return "; ".join(dict.fromkeys(line.strip() for line in self.lines if line.strip()))

    def __enter__(self) -> _Capture:
        self._logger.addHandler(self)
        if self._logger.getEffectiveLevel() > logging.WARNING:
            self._logger.setLevel(logging.WARNING)
        return self

    def __exit__(self, *exc: object) -> None:
        self._logger.removeHandler(self)
