"""The agent config file (`agent.toml`): its schema, validation, and the default templates.

Validation names the bad key in one sentence. The coordinator validates a config when
the manager asks for an approval and again before it applies one; the harness and the
backends read only configs that passed.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .budget import BudgetError, check_usd
from .names import InvalidName, validate_agent_name
from .protocol import Refusal
from .vocab import Code, Network, Period

CONFIG_FILE = "agent.toml"
MAX_CONFIG_BYTES = 64 * 1024

_PACKAGE = re.compile(r"[a-z0-9][a-z0-9+.-]{0,99}")
_ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")
_MEMORY = re.compile(r"[1-9][0-9]{0,5}[KMG]?")
_MODEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/-]{0,99}")
_RESERVED_ENV = ("HIVE_", "ANTHROPIC_", "LD_", "PYTHON", "GIT_AUTHOR_", "GIT_COMMITTER_")
NETWORKS = tuple(Network)
MAX_EGRESS = 200
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
DENIED_TARGETS = ("/state", "/usr", "/etc", "/proc", "/sys", "/dev", "/run", "/hive", "/agents")
"""A bind may not cover these, nor reach inside them (nor cover `/` itself)."""
KNOWN_KEYS = (
    "model",
    "system_prompt",
    "packages",
    "environment",
    "binds",
    "limits",
    "budget",
    "allowed_recipients",
    "network",
    "egress",
)


def valid_model(name: str) -> bool:
    return bool(_MODEL.fullmatch(name))


class ConfigError(Refusal):
    """An agent config that does not validate; the message names the bad key."""

    code = Code.INVALID


@dataclass(frozen=True)
class Bind:
    source: str
    target: str
    readonly: bool = True


@dataclass(frozen=True)
class AgentConfig:
    model: str | None = None
    system_prompt: str = ""
    packages: tuple[str, ...] = ()
    environment: dict[str, str] = field(default_factory=dict)
    binds: tuple[Bind, ...] = ()
    memory: str | None = None
    cpu: float | None = None
    tasks: int | None = None
    allowed_recipients: tuple[str, ...] | None = None  # None = anyone
    network: Network = Network.PRIVATE
    egress: tuple[str, ...] = ()
    """Domain names the egress proxy allows (`*.example.org`: any name below it)."""
    budget: dict[Period, float] = field(default_factory=dict)
    """`[budget]`: its spending caps by period (the gateway refuses model requests past one)."""

    def may_send_to(self, recipient: str) -> bool:
        return self.allowed_recipients is None or recipient in self.allowed_recipients


def normalise(path: str) -> str:
    """`//etc/./x/` → `/etc/x`: one spelling per absolute path ('..' is refused, not resolved)."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    return "/" + "/".join(parts)


def _abs_path(value: object, key: str) -> str:
    if not isinstance(value, str) or not value.startswith("/") or len(value) > 4096:
        raise ConfigError(f"config key '{key}' must be an absolute path")
    parts = value.split("/")
    if ".." in parts or "\x00" in value or ":" in value:
        raise ConfigError(f"config key '{key}' must not contain '..', ':' or NUL")
    return normalise(value)


def _within(path: str, root: str) -> bool:
    """`path` is `root` or below it (both normalised)."""
    return path == root or root == "/" or path.startswith(root + "/")


def check_bind_sources(config: AgentConfig, hive_roots: Iterable[str | os.PathLike[str]]) -> None:
    """Refuse a bind whose source is inside the hive's own dirs (which agents write, and which
    root would follow links in when it binds) or above them (which would expose them all)."""
    roots = [normalise(os.fspath(r)) for r in hive_roots]
    for i, b in enumerate(config.binds):
        for root in roots:
            if _within(b.source, root) or _within(root, b.source):
                raise ConfigError(
                    f"config key 'binds[{i}].source' ({b.source}) overlaps the hive's own "
                    f"files at {root}: bind a directory outside it"
                )


def _str_list(value: object, key: str, limit: int = 200) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"config key '{key}' must be a list of strings")
    if len(value) > limit:
        raise ConfigError(f"config key '{key}' has more than {limit} entries")
    return list(value)


def parse(data: bytes | str) -> AgentConfig:
    """Parse and validate an agent config; raise `ConfigError` naming the bad key."""
    if isinstance(data, bytes):
        if len(data) > MAX_CONFIG_BYTES:
            raise ConfigError(f"{CONFIG_FILE} is larger than {MAX_CONFIG_BYTES // 1024} KiB")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise ConfigError(f"{CONFIG_FILE} is not valid UTF-8") from None
    else:
        text = data
    try:
        raw: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{CONFIG_FILE} is not valid TOML: {e}") from None
    for key in raw:
        if key not in KNOWN_KEYS:
            raise ConfigError(f"unknown config key '{key}': known keys are {', '.join(KNOWN_KEYS)}")

    model = raw.get("model")
    if model is not None and (not isinstance(model, str) or not _MODEL.fullmatch(model)):
        raise ConfigError("config key 'model' must be a model name such as 'claude-sonnet-4-5'")

    prompt = raw.get("system_prompt", "")
    if not isinstance(prompt, str) or len(prompt) > 32_000:
        raise ConfigError("config key 'system_prompt' must be a string of at most 32000 characters")

    packages = _str_list(raw.get("packages", []), "packages")
    for pkg in packages:
        if not _PACKAGE.fullmatch(pkg):
            raise ConfigError(f"config key 'packages' has an invalid Debian package name {pkg!r}")

    env_raw = raw.get("environment", {})
    if not isinstance(env_raw, dict):
        raise ConfigError("config key 'environment' must be a table of NAME = \"value\"")
    environment: dict[str, str] = {}
    for k, v in env_raw.items():
        if not _ENV_KEY.fullmatch(k) or k.upper().startswith(_RESERVED_ENV):
            raise ConfigError(f"config key 'environment.{k}' is not an allowed variable name")
        if not isinstance(v, str) or "\x00" in v or len(v) > 4096:
            raise ConfigError(f"config key 'environment.{k}' must be a string")
        environment[k] = v

    binds_raw = raw.get("binds", [])
    if not isinstance(binds_raw, list) or len(binds_raw) > 32:
        raise ConfigError("config key 'binds' must be a list of {source, target, readonly} tables")
    binds = []
    for i, b in enumerate(binds_raw):
        key = f"binds[{i}]"
        if not isinstance(b, dict) or set(b) - {"source", "target", "readonly"}:
            raise ConfigError(f"config key '{key}' must have only source, target and readonly")
        ro = b.get("readonly", True)
        if not isinstance(ro, bool):
            raise ConfigError(f"config key '{key}.readonly' must be true or false")
        target = _abs_path(b.get("target"), f"{key}.target")
        if target == "/" or target in DENIED_TARGETS:
            raise ConfigError(f"config key '{key}.target' may not cover {target}")
        for denied in DENIED_TARGETS:
            if _within(target, denied):
                raise ConfigError(f"config key '{key}.target' may not be inside {denied}")
        binds.append(Bind(_abs_path(b.get("source"), f"{key}.source"), target, ro))

    limits = raw.get("limits", {})
    if not isinstance(limits, dict):
        raise ConfigError("config key 'limits' must be a table")
    for k in limits:
        if k not in ("memory", "cpu", "tasks"):
            raise ConfigError(f"unknown config key 'limits.{k}': use memory, cpu or tasks")
    memory = limits.get("memory")
    if memory is not None and (not isinstance(memory, str) or not _MEMORY.fullmatch(memory)):
        raise ConfigError("config key 'limits.memory' must look like '512M' or '2G'")
    cpu = limits.get("cpu")
    if cpu is not None and (
        isinstance(cpu, bool) or not isinstance(cpu, int | float) or not 0.01 <= cpu <= 1024
    ):
        raise ConfigError("config key 'limits.cpu' must be a number of CPUs from 0.01 to 1024")
    tasks = limits.get("tasks")
    if tasks is not None and (isinstance(tasks, bool) or not isinstance(tasks, int) or tasks < 1):
        raise ConfigError("config key 'limits.tasks' must be a positive integer")
    budget = _budget(raw.get("budget", {}))

    recipients: tuple[str, ...] | None = None
    if "allowed_recipients" in raw:
        names = _str_list(raw["allowed_recipients"], "allowed_recipients", limit=1000)
        try:
            recipients = tuple(n if n == "operator" else validate_agent_name(n) for n in names)
        except InvalidName as e:
            raise ConfigError(f"config key 'allowed_recipients': {e}") from None

    network_raw = raw.get("network", Network.PRIVATE.value)
    if network_raw not in NETWORKS:
        raise ConfigError(f"config key 'network' must be one of {', '.join(NETWORKS)}")
    network = Network(network_raw)
    egress = tuple(
        valid_domain(d, f"egress[{i}]")
        for i, d in enumerate(_str_list(raw.get("egress", []), "egress", limit=MAX_EGRESS))
    )
    if network is Network.EGRESS and not egress:
        raise ConfigError(
            "config key 'egress' must list at least one domain name when network = \"egress\""
        )
    if egress and network is not Network.EGRESS:
        raise ConfigError(
            f"config key 'egress' only applies with network = \"egress\" (this config has "
            f'network = "{network}"): remove it or change the network'
        )
    if len(set(egress)) != len(egress):
        raise ConfigError("config key 'egress' lists a domain name twice")

    return AgentConfig(
        model=model,
        system_prompt=prompt,
        packages=tuple(packages),
        environment=environment,
        binds=tuple(binds),
        memory=memory,
        cpu=float(cpu) if cpu is not None else None,
        tasks=tasks,
        allowed_recipients=recipients,
        network=network,
        egress=egress,
        budget=budget,
    )


def _budget(table: object) -> dict[Period, float]:
    """`[budget]`: daily_usd, monthly_usd and total_usd, each a cap in US dollars."""
    if not isinstance(table, dict):
        raise ConfigError("config key 'budget' must be a table")
    keys = {p.config_key: p for p in Period}
    out: dict[Period, float] = {}
    for k, v in table.items():
        if k not in keys:
            raise ConfigError(f"unknown config key 'budget.{k}': use {', '.join(keys)}")
        try:
            out[keys[k]] = check_usd(v, f"config key 'budget.{k}'")
        except BudgetError as e:
            raise ConfigError(str(e)) from None
    return out


def valid_domain(value: str, key: str = "egress") -> str:
    """A domain name the egress proxy may allow, lower-cased: letters, digits and '-' in
    dot-separated labels, at least two labels, not an address; `*.` in front means any name
    below it. Refused with one sentence naming `key`."""
    name = value.lower()
    rest = name[2:] if name.startswith("*.") else name
    labels = rest.split(".")
    if (
        len(rest) > 253
        or len(labels) < 2
        or not all(_LABEL.fullmatch(label) for label in labels)
        or labels[-1].isdigit()
    ):
        raise ConfigError(
            f"config key '{key}' ({value!r}) must be a domain name such as 'pypi.org' or "
            "'*.pythonhosted.org' (letters, digits and '-' between dots; no address, port or path)"
        )
    return name


def risks(config: AgentConfig, name: str) -> list[str]:
    """What the operator must read before approving `config` for agent `name`: one sentence
    per grant that reaches beyond the agent's own container (shown on the approval card
    and in `hivectl pending`)."""
    out = []
    if config.network.risky:
        out.append(
            f'network = "host": {name} shares the host\'s network, so it can reach every service '
            "listening on the host (its loopback and the dashboard included), the local network "
            'and the internet; "egress" with a list of domains is the contained choice'
        )
    return out


def risks_of(blob: bytes | memoryview | None, name: str) -> list[str]:
    """`risks` of the config bytes an approval carries (a config that does not parse says so)."""
    try:
        return risks(parse(bytes(blob or b"")), name)
    except ConfigError as e:
        return [f"this config does not validate, so approving it will fail: {e}"]


def template(name: str, *, manager: bool = False) -> str:
    """The config a new agent starts from (what `request_init_config` seeds)."""
    role = (
        "the manager of this hive: you review and submit config changes for the other agents"
        if manager
        else "a member of this hive; describe your role here"
    )
    return (
        f"# agent.toml for {name}: the only file the manager may change.\n"
        f"# Every change is applied only after the operator approves its commit.\n"
        f"\n"
        f'# model = "claude-sonnet-4-5"    # the default model of this agent\n'
        f'system_prompt = """\nYou are {name}, {role}.\n"""\n'
        f"\n"
        f"# Debian packages installed as a read-only layer in the container.\n"
        f"packages = []\n"
        f"\n"
        f'# allowed_recipients = ["hm1nd"]   # whom this agent may message; omit for anyone\n'
        f"\n"
        f'# The network this agent may use. "private" (the default): none, only its own\n'
        f'# loopback; the model is still reached through the hive\'s socket. "egress": only\n'
        f"# the domains listed below, through a filtering proxy on the host (HTTPS_PROXY and\n"
        f'# HTTP_PROXY are set; "*.example.org" allows any name below example.org). "host": the\n'
        f"# host's whole network, its loopback and the dashboard included (the operator is\n"
        f"# warned when approving it).\n"
        f'# network = "egress"\n'
        f'# egress = ["pypi.org", "files.pythonhosted.org"]\n'
        f"\n"
        f"[environment]\n"
        f'# EXAMPLE = "value"\n'
        f"\n"
        f"[limits]\n"
        f'# memory = "2G"\n'
        f"# cpu = 1.0\n"
        f"# tasks = 512\n"
        f"\n"
        f"# Spending caps in US dollars (days and months as the host's clock has them). At a\n"
        f"# cap the agent starts no turn until the operator raises or resets it.\n"
        f"[budget]\n"
        f"# daily_usd = 5.0\n"
        f"# monthly_usd = 100.0\n"
        f"# total_usd = 500.0\n"
        f"\n"
        f"# [[binds]]\n"
        f'# source = "/srv/shared"\n'
        f'# target = "/shared"\n'
        f"# readonly = true\n"
    )
