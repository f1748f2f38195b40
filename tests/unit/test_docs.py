"""Docs are tested: every socket command, hivectl subcommand and console script is documented."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from hyperhive.cli.parser import SUBCOMMANDS
from hyperhive.coordinator.registry import loaded

COMMANDS = loaded()

DOCS = Path(__file__).resolve().parents[2] / "docs"
ROOT = DOCS.parent


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_socket_command_documented(name: str) -> None:
    assert f"`{name}" in (DOCS / "sockets.md").read_text(), f"document {name} in docs/sockets.md"


@pytest.mark.parametrize("name", [s.name for s in SUBCOMMANDS])
def test_hivectl_subcommand_documented(name: str) -> None:
    text = (DOCS / "hivectl.md").read_text()
    assert f"`hivectl {name}" in text or f"`{name}`" in text


def test_console_scripts_documented() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    text = "".join(p.read_text() for p in DOCS.glob("*.md"))
    for script in scripts:
        assert f"`{script}" in text, f"console script {script} is not in docs/"


def test_readme_has_exactly_two_setup_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    block = readme.split("```sh", 1)[1].split("```", 1)[0]
    assert [line.split()[0:2] for line in block.strip().splitlines()] == [
        ["make", "demo"],
        ["make", "test"],
    ]
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_tests_named_in_the_security_page_exist() -> None:
    text = (DOCS / "security.md").read_text()
    named = set(re.findall(r"`(tests/[\w/]+\.py)::(\w+)", text))
    assert named, "docs/security.md names no test"
    for path, name in sorted(named):
        source = (ROOT / path).read_text()
        assert f"def {name}(" in source, f"docs/security.md names {path}::{name}, which is gone"


def test_the_port_in_use_sentence_is_the_one_hive_web_says() -> None:
    import socket

    from hyperhive.web.serve import BindError, bind
    from hyperhive.web.settings import Listen

    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    try:
        with pytest.raises(BindError) as said:
            bind(Listen("127.0.0.1", port), retry_seconds=0)
    finally:
        holder.close()
    sentence = str(said.value).replace(str(port), "7800").replace("0 s", "5 s")
    assert f"hive-web: {sentence}" in (DOCS / "web-ui.md").read_text()
    assert "port 7800 on 127.0.0.1 is already in use" in (DOCS / "operations.md").read_text()


def test_no_doc_calls_a_shipped_service_planned() -> None:
    for page in DOCS.glob("*.md"):
        assert "Planned" not in page.read_text(), page.name


def test_bootstrap_waits_for_a_held_dpkg_lock() -> None:
    script = (ROOT / "scripts" / "bootstrap").read_text()
    lines = script.splitlines()
    calls = [
        x for x in lines if "apt-get " in x and "echo" not in x and not x.lstrip().startswith("#")
    ]
    assert calls and all("DPkg::Lock::Timeout=" in line for line in calls), calls
