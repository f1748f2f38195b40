"""agent.toml: the template validates; every bad key is refused with a sentence naming it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hyperhive.hive.agentconfig import (
    MAX_CONFIG_BYTES,
    Bind,
    ConfigError,
    check_bind_sources,
    parse,
    template,
)
from hyperhive.hive.vocab import Period


def test_templates_validate() -> None:
    assert parse(template("alice")).system_prompt.startswith("You are alice")
    assert "manager" in parse(template("hm1nd", manager=True)).system_prompt


def test_full_config() -> None:
    c = parse(
        b"""
model = "claude-sonnet-4-5"
system_prompt = "hi"
packages = ["ripgrep", "g++", "python3.11"]
network = "private"
allowed_recipients = ["hm1nd", "operator"]
[environment]
LANGUAGE = "en"
[limits]
memory = "2G"
cpu = 1.5
tasks = 100
[[binds]]
source = "/srv/a"
target = "/a"
readonly = false
"""
    )
    assert c.model == "claude-sonnet-4-5" and c.packages == ("ripgrep", "g++", "python3.11")
    assert c.environment == {"LANGUAGE": "en"} and c.binds == (Bind("/srv/a", "/a", False),)
    assert (c.memory, c.cpu, c.tasks, c.network) == ("2G", 1.5, 100, "private")
    assert c.may_send_to("hm1nd") and not c.may_send_to("bob")
    assert parse("").may_send_to("anyone")


BAD = [
    ("colour = 1", "unknown config key 'colour'"),
    ("model = 3", "'model'"),
    ('model = "a b"', "'model'"),
    ("system_prompt = []", "'system_prompt'"),
    ('packages = "vim"', "'packages' must be a list"),
    ('packages = ["Vim!"]', "invalid Debian package name"),
    ('packages = ["-o"]', "invalid Debian package name"),
    ("[environment]\nHIVE_SOCKET = '/x'", "'environment.HIVE_SOCKET'"),
    ("[environment]\nANTHROPIC_API_KEY = 'k'", "'environment.ANTHROPIC_API_KEY'"),
    ("[environment]\nLD_PRELOAD = 'x'", "'environment.LD_PRELOAD'"),
    ("[environment]\nX = 1", "'environment.X' must be a string"),
    ("environment = 3", "'environment'"),
    ("[[binds]]\nsource = 'rel'\ntarget = '/x'", "'binds[0].source' must be an absolute path"),
    ("[[binds]]\nsource = '/a/../etc'\ntarget = '/x'", "must not contain '..'"),
    ("[[binds]]\nsource = '/a'\ntarget = '/state'", "may not cover /state"),
    ("[[binds]]\nsource = '/a'\ntarget = '/x'\nreadonly = 'no'", "'binds[0].readonly'"),
    ("[[binds]]\nsource = '/a'\ntarget = '/x'\nmode = 'rw'", "only source, target and readonly"),
    ("[limits]\nmemory = 'lots'", "'limits.memory'"),
    ("[limits]\ncpu = true", "'limits.cpu'"),
    ("[limits]\ncpu = 0", "'limits.cpu'"),
    ("[limits]\ntasks = 0", "'limits.tasks'"),
    ("[limits]\nswap = 1", "unknown config key 'limits.swap'"),
    ('allowed_recipients = ["Bob"]', "'allowed_recipients'"),
    ('network = "bridge"', "'network' must be one of private, egress, host"),
    ('network = "egress"', "'egress' must list at least one domain name"),
    ('network = "egress"\negress = []', "'egress' must list at least one domain name"),
    ('egress = ["pypi.org"]', "'egress' only applies with network = \"egress\""),
    ('network = "host"\negress = ["pypi.org"]', 'this config has network = "host"'),
    ('network = "egress"\negress = "pypi.org"', "'egress' must be a list of strings"),
    ('network = "egress"\negress = ["a.org", "A.org"]', "'egress' lists a domain name twice"),
    ("not toml [", "not valid TOML"),
]


@pytest.mark.parametrize(("text", "fragment"), BAD, ids=[f for _, f in BAD])
def test_bad_configs(text: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(").replace("[", r"\[")):
        parse(text)


def test_size_and_encoding() -> None:
    with pytest.raises(ConfigError, match="larger than 64 KiB"):
        parse(b"#" * (MAX_CONFIG_BYTES + 1))
    with pytest.raises(ConfigError, match="UTF-8"):
        parse(b"\xff")


def _bind(source: str, target: str) -> str:
    return f"[[binds]]\nsource = '{source}'\ntarget = '{target}'\n"


@pytest.mark.parametrize("target", ["/etc/", "//etc", "/./etc", "/etc/.", "///etc//"])
def test_bind_targets_are_normalised_before_the_deny_list(target: str) -> None:
    with pytest.raises(ConfigError, match=r"'binds\[0\].target' may not cover /etc$"):
        parse(_bind("/srv/a", target))


@pytest.mark.parametrize(
    ("target", "inside"),
    [
        ("/proc/x", "/proc"),
        ("//proc/sys/kernel", "/proc"),
        ("/run/hive", "/run"),
        ("/state/x", "/state"),
        ("/etc/passwd", "/etc"),
        ("/dev/./sda", "/dev"),
        ("/hive/applied", "/hive"),
    ],
)
def test_bind_targets_inside_a_denied_dir_are_refused(target: str, inside: str) -> None:
    with pytest.raises(ConfigError, match=rf"'binds\[0\].target' may not be inside {inside}$"):
        parse(_bind("/srv/a", target))


def test_bind_paths_are_kept_in_their_one_spelling() -> None:
    c = parse(_bind("//srv/./shared/", "/shared//x/"))
    assert c.binds == (Bind("/srv/shared", "/shared/x", True),)
    assert parse(_bind("/srv/a", "/etcetera")).binds[0].target == "/etcetera"


@pytest.mark.parametrize(
    "source",
    [
        "/var/lib/hyperhive/agents/alice/config",  # agent-written: root would follow its links
        "/var/lib/hyperhive",
        "/var/lib/hyperhive/agent-state/bob",  # another agent's /state
        "/var/lib",  # above it: all of it
        "/",
        "/run/hyperhive/agents/bob",  # another agent's socket: its identity
        "//var/lib/./hyperhive/",
    ],
)
def test_bind_sources_in_or_above_the_hives_own_files_are_refused(source: str) -> None:
    config = parse(_bind(source, "/x"))
    with pytest.raises(ConfigError, match=r"'binds\[0\].source' \(.+\) overlaps the hive's own"):
        check_bind_sources(config, [Path("/var/lib/hyperhive"), Path("/run/hyperhive")])


def test_bind_sources_elsewhere_are_fine() -> None:
    config = parse(_bind("/srv/shared", "/shared") + _bind("/var/lib/hyperhive2", "/y"))
    check_bind_sources(config, [Path("/var/lib/hyperhive"), Path("/run/hyperhive")])


def test_a_config_cannot_change_whom_git_records() -> None:
    for key in ("GIT_AUTHOR_NAME", "GIT_COMMITTER_EMAIL"):
        with pytest.raises(ConfigError, match=f"environment.{key}"):
            parse(f'[environment]\n{key} = "the operator"\n')


@pytest.mark.parametrize(
    ("text", "caps"),
    [
        ("", {}),
        ("[budget]\ndaily_usd = 12.5", {Period.DAILY: 12.5}),
        ("[budget]\nmonthly_usd = 0\ntotal_usd = 100", {Period.MONTHLY: 0.0, Period.TOTAL: 100.0}),
    ],
)
def test_the_budget_is_caps_in_dollars_by_period(text: str, caps: dict[Period, float]) -> None:
    assert parse(text).budget == caps


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[budget]\ndaily_usd = -1", "budget.daily_usd"),
        ("[budget]\ndaily_usd = true", "budget.daily_usd"),
        ("[budget]\nmonthly_usd = '5'", "budget.monthly_usd"),
        ("[budget]\ntotal_usd = inf", "budget.total_usd"),
        ("[budget]\ntotal_usd = nan", "budget.total_usd"),
        ("[budget]\ntotal_usd = 1e12", "budget.total_usd"),
        ("[budget]\nweekly_usd = 5", "budget.weekly_usd"),
        ("budget = 5", "budget"),
        ("[limits]\nspend_usd = 5", "limits.spend_usd"),
    ],
)
def test_a_bad_cap_is_refused_naming_the_key(text: str, key: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"'{key}'")):
        parse(text)
