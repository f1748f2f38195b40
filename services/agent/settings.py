"""The harness's environment contract: what the backend hands it, read once at start.

Owns the names and defaults of every `HIVE_AGENT*` variable the harness reads; nothing
else in the harness reads `os.environ` for its own settings.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..hive.agentconfig import AgentConfig, ConfigError, parse
from ..hive.log import WARNING, log
from ..hive.names import MANAGER

RESUMED = "HIVE_AGENT_RESUMED"
"""Set by the harness for itself when it starts again in place; never by a backend."""
DEFAULT_MODEL = "claude-sonnet-4-5"
"""The model when neither the operator's override nor the agent's config names one."""


class SettingsError(Exception):
    """The environment lacks something the harness cannot run without."""


@dataclass(frozen=True)
class Settings:
    agent: str
    socket: Path
    state_dir: Path
    kind: str  # "manager" or "agent"
    config: AgentConfig
    gateway_socket: Path = Path("/run/hive-gateway/api.sock")
    """Where the model gateway answers (it holds the API key; the harness holds none)."""
    agents_dir: Path | None = None
    max_tokens: int = 8192
    compact_at_tokens: int = 150_000
    """Summarise the conversation once its estimated size passes this many tokens."""
    bash_timeout: float = 300.0
    retry_base: float = 2.0
    """First backoff after an overloaded / rate-limited / 5xx answer; doubles, capped."""
    retry_cap: float = 300.0
    max_retries: int = 0
    """Attempts before a turn gives up on a transient API error; 0 retries until cancelled."""
    login_recheck: float = 60.0
    """Safety-net seconds between asking the gateway again while waiting in needs_login or
    over_budget (the gateway answers at once when its state changes)."""
    shed_after: float = 600.0
    """Seconds waiting after a turn before the harness starts again in place, releasing the
    memory the turn's SDK holds (0: never)."""
    resumed: bool = False
    """This process is the harness started again in place (`RESUMED` in its environment)."""

    @property
    def is_manager(self) -> bool:
        return self.kind == "manager"

    @property
    def default_model(self) -> str:
        return self.config.model or DEFAULT_MODEL


def _number(env: Mapping[str, str], name: str, default: float, minimum: float) -> float:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number") from None
    if not value >= minimum:
        raise SettingsError(f"{name}={raw!r} must be at least {minimum:g}")
    return value


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name)
    if not value:
        raise SettingsError(f"{name} is not set: the backend that starts hive-agent must set it")
    return value


def load_config(path: Path | None, agent: str) -> AgentConfig:
    """The applied agent.toml; its defaults (with a warning) if it is missing or invalid."""
    if path is None:
        return AgentConfig()
    try:
        return parse(path.read_bytes())
    except (OSError, ConfigError) as e:
        log(
            f"agent config {path} is unusable ({e}); running with the defaults",
            kind="turn",
            agent=agent,
            priority=WARNING,
        )
        return AgentConfig()


def from_env(env: Mapping[str, str] | None = None) -> Settings:
    e = os.environ if env is None else env
    agent = _required(e, "HIVE_AGENT")
    kind = e.get("HIVE_AGENT_KIND") or ("manager" if agent == MANAGER else "agent")
    if kind not in ("manager", "agent"):
        raise SettingsError(f"HIVE_AGENT_KIND={kind!r} must be 'manager' or 'agent'")
    config_path = e.get("HIVE_AGENT_CONFIG")
    agents_dir = e.get("HIVE_AGENTS_DIR")
    return Settings(
        agent=agent,
        socket=Path(_required(e, "HIVE_SOCKET")),
        gateway_socket=Path(_required(e, "HIVE_GATEWAY_SOCKET")),
        state_dir=Path(_required(e, "HIVE_AGENT_STATE")),
        kind=kind,
        config=load_config(Path(config_path) if config_path else None, agent),
        agents_dir=Path(agents_dir) if agents_dir else None,
        max_tokens=int(_number(e, "HIVE_AGENT_MAX_TOKENS", 8192, 1)),
        compact_at_tokens=int(_number(e, "HIVE_AGENT_COMPACT_TOKENS", 150_000, 1)),
        bash_timeout=_number(e, "HIVE_AGENT_BASH_TIMEOUT", 300.0, 0.1),
        retry_base=_number(e, "HIVE_AGENT_RETRY_BASE", 2.0, 0.0),
        retry_cap=_number(e, "HIVE_AGENT_RETRY_CAP", 300.0, 0.0),
        max_retries=int(_number(e, "HIVE_AGENT_MAX_RETRIES", 0, 0)),
        login_recheck=_number(e, "HIVE_AGENT_LOGIN_RECHECK", 60.0, 0.1),
        shed_after=_number(e, "HIVE_AGENT_SHED_AFTER", 600.0, 0.0),
        resumed=e.get(RESUMED) == "1",
    )
