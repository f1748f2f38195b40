"""The gateway's environment contract, read once at start: the key, the upstream, its timers.

The key comes from systemd's credential directory (`LoadCredential=anthropic-api-key:…`)
or from `ANTHROPIC_API_KEY` (the unit's `EnvironmentFile=-/etc/hyperhive/credentials.env`,
or the coordinator's environment on the process backend). It is never logged.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_BASE_URL = "https://api.anthropic.com"
UNIT_HINT = (
    "the operator puts ANTHROPIC_API_KEY=… in /etc/hyperhive/credentials.env and restarts "
    "hive-gateway"
)
PROCESS_HINT = (
    "the operator sets ANTHROPIC_API_KEY in the environment of the coordinator that runs the "
    "gateway (process backend) and starts it again"
)
CREDENTIAL = "anthropic-api-key"
"""The name of the key in $CREDENTIALS_DIRECTORY (LoadCredential=anthropic-api-key:PATH)."""


class SettingsError(Exception):
    """A setting the gateway cannot run with; the message names it."""


@dataclass(frozen=True)
class Settings:
    key: str | None = field(default=None, repr=False)
    key_source: str = "none"
    base_url: str = DEFAULT_BASE_URL
    recheck: float = 60.0
    """Safety-net seconds between reads of the agents table (the doorbell is the fast path)."""
    exit_with: int | None = None
    """A PID whose exit ends the gateway (the coordinator that started it, process backend)."""
    key_hint: str = UNIT_HINT
    """Where the operator puts a key, for the sentences agents and the journal show."""


def _key(env: Mapping[str, str]) -> tuple[str | None, str]:
    creds = env.get("CREDENTIALS_DIRECTORY")
    if creds:
        try:
            text = (Path(creds) / CREDENTIAL).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            text = ""
        if text:
            return text.splitlines()[0].strip(), f"credential {CREDENTIAL}"
    key = (env.get("ANTHROPIC_API_KEY") or "").strip()
    return (key, "ANTHROPIC_API_KEY") if key else (None, "none")


def from_env(env: Mapping[str, str] | None = None) -> Settings:
    e = os.environ if env is None else env
    key, source = _key(e)
    base_url = (e.get("ANTHROPIC_BASE_URL") or DEFAULT_BASE_URL).strip()
    if not base_url.startswith(("http://", "https://")):
        raise SettingsError(
            f"ANTHROPIC_BASE_URL={base_url!r} is not an http(s) URL: set it to the API's "
            f"address, or leave it unset for {DEFAULT_BASE_URL}"
        )
    raw = e.get("HIVE_GATEWAY_RECHECK") or "60"
    try:
        recheck = float(raw)
    except ValueError:
        raise SettingsError(f"HIVE_GATEWAY_RECHECK={raw!r} is not a number of seconds") from None
    if not recheck >= 0.1:
        raise SettingsError(f"HIVE_GATEWAY_RECHECK={raw!r} must be at least 0.1 seconds")
    parent = e.get("HIVE_GATEWAY_EXIT_WITH")
    if parent is not None and not parent.isdigit():
        raise SettingsError(f"HIVE_GATEWAY_EXIT_WITH={parent!r} is not a process id")
    return Settings(
        key=key,
        key_source=source,
        base_url=base_url,
        recheck=recheck,
        exit_with=int(parent) if parent else None,
        key_hint=PROCESS_HINT if parent else UNIT_HINT,
    )
