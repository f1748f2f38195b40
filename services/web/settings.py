"""The dashboard's settings, read once from the environment (see docs/web-ui.md).

Only parsing and checking: nothing here opens a socket or a file.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..hive import budget
from ..hive.paths import Paths
from ..hive.vocab import Period

DEFAULT_LISTEN = "127.0.0.1:7800"
DEFAULT_BIND_RETRY = 5.0
DEFAULT_MAX_STREAMS = 32
DEFAULT_STREAMS_PER_SESSION = 6
DEFAULT_REQUEST_TIMEOUT = 10.0


class SettingsError(ValueError):
    """A setting that cannot work; the message names the variable and what to do."""


@dataclass(frozen=True)
class Listen:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_listen(value: str) -> Listen:
    """`HOST:PORT`, `[V6]:PORT` or `PORT` (loopback) → Listen; refuse anything else."""
    text = value.strip()
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = "127.0.0.1", text
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise SettingsError(
            f"HIVE_WEB_LISTEN={value!r} is not HOST:PORT: use e.g. 127.0.0.1:7800 or [::1]:7800"
        )
    return Listen(host, int(port_text))


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses; a name other than localhost is not."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _number(e: Mapping[str, str], key: str, default: float) -> float:
    try:
        return float(e.get(key) or default)
    except ValueError:
        raise SettingsError(f"{key}={e.get(key)!r} must be a number") from None


def parse_public_url(value: str | None) -> str | None:
    """HIVE_WEB_PUBLIC_URL: where operators reach the dashboard (`https://host[:port]`)."""
    if not value or not value.strip():
        return None
    url = value.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path:
        raise SettingsError(
            f"HIVE_WEB_PUBLIC_URL={value!r} is not a URL such as https://hive.example.org"
        )
    return url


def _budget_defaults(e: Mapping[str, str]) -> dict[Period, float | None]:
    try:
        return budget.defaults(e)
    except budget.BudgetError as err:
        raise SettingsError(str(err)) from None


@dataclass(frozen=True)
class WebSettings:
    paths: Paths
    listen: Listen
    public_url: str | None
    trusted_proxy: str | None
    journal_namespace: str | None
    bind_retry: float
    max_streams: int
    streams_per_session: int
    request_timeout: float
    budget_defaults: dict[Period, float | None]
    """HIVE_BUDGET_<PERIOD>_USD: each agent's cap where nothing else sets one (shown beside
    the hive's spend)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WebSettings:
        e = dict(os.environ if env is None else env)
        return cls(
            paths=Paths.from_env(e),
            listen=parse_listen(e.get("HIVE_WEB_LISTEN") or DEFAULT_LISTEN),
            public_url=parse_public_url(e.get("HIVE_WEB_PUBLIC_URL")),
            trusted_proxy=e.get("HIVE_WEB_TRUSTED_PROXY") or None,
            journal_namespace=e.get("HIVE_WEB_JOURNAL_NAMESPACE") or None,
            bind_retry=max(0.0, _number(e, "HIVE_WEB_BIND_RETRY", DEFAULT_BIND_RETRY)),
            max_streams=max(1, int(_number(e, "HIVE_WEB_MAX_STREAMS", DEFAULT_MAX_STREAMS))),
            streams_per_session=max(
                1, int(_number(e, "HIVE_WEB_STREAMS_PER_SESSION", DEFAULT_STREAMS_PER_SESSION))
            ),
            request_timeout=max(
                1.0, _number(e, "HIVE_WEB_REQUEST_TIMEOUT", DEFAULT_REQUEST_TIMEOUT)
            ),
            budget_defaults=_budget_defaults(e),
        )

    @property
    def public_host(self) -> str | None:
        return urlsplit(self.public_url).hostname if self.public_url else None

    @property
    def https(self) -> bool:
        return bool(self.public_url and self.public_url.startswith("https://"))

    def require_public_url_for(self, host: str) -> None:
        """Listening beyond loopback needs HIVE_WEB_PUBLIC_URL (a TLS reverse proxy's URL)."""
        if not is_loopback(host) and self.public_url is None:
            raise SettingsError(
                f"hive-web would listen on {host}, which is not a loopback address: serve it "
                "through a TLS reverse proxy and set HIVE_WEB_PUBLIC_URL=https://… (see "
                "docs/operations.md), or listen on 127.0.0.1"
            )
