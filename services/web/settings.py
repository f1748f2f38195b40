"""The dashboard's settings, read once from the environment (see docs/web-ui.md).

Only parsing and checking: nothing here opens a socket or a file.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass

from services.hive.paths import Paths

DEFAULT_LISTEN = "127.0.0.1:7800"
DEFAULT_BIND_RETRY = 5.0
DEFAULT_MAX_STREAMS = 32


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


@dataclass(frozen=True)
class WebSettings:
    paths: Paths
    listen: Listen
    token: str | None
    journal_namespace: str | None
    bind_retry: float
    max_streams: int

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WebSettings:
        e = dict(os.environ if env is None else env)
        token = e.get("HIVE_WEB_TOKEN") or None
        if token is not None and len(token) < 16:
            raise SettingsError(
                "HIVE_WEB_TOKEN is shorter than 16 characters: use a random one "
                "(e.g. `openssl rand -hex 32`)"
            )
        try:
            retry = float(e.get("HIVE_WEB_BIND_RETRY") or DEFAULT_BIND_RETRY)
            streams = int(e.get("HIVE_WEB_MAX_STREAMS") or DEFAULT_MAX_STREAMS)
        except ValueError:
            raise SettingsError(
                "HIVE_WEB_BIND_RETRY and HIVE_WEB_MAX_STREAMS must be numbers"
            ) from None
        return cls(
            paths=Paths.from_env(e),
            listen=parse_listen(e.get("HIVE_WEB_LISTEN") or DEFAULT_LISTEN),
            token=token,
            journal_namespace=e.get("HIVE_WEB_JOURNAL_NAMESPACE") or None,
            bind_retry=max(0.0, retry),
            max_streams=max(1, streams),
        )

    def require_token_for(self, host: str) -> None:
        """A bind to anything but loopback needs an operator token; refuse to serve without one."""
        if not is_loopback(host) and self.token is None:
            raise SettingsError(
                f"hive-web would listen on {host}, which is not a loopback address: set "
                "HIVE_WEB_TOKEN to an operator token (e.g. `openssl rand -hex 32`) "
                "or listen on 127.0.0.1"
            )
