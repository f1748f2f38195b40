"""The prompts are part of the contract: the manager's names every helper event with its
fields and every tool it has; the sub-agent's says how to ask for changes and reach the
operator. A new helper event without its prompt text fails here.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from hyperhive.agent import hivetools
from hyperhive.agent.prompt import role_prompt
from hyperhive.hive.events import VARIANTS

MANAGER = role_prompt("manager")
AGENT = role_prompt("agent")
DOC = Path(__file__).resolve().parents[2] / "docs" / "turn-loop.md"


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_the_manager_prompt_shows_every_helper_event_with_its_fields(name: str) -> None:
    line = next((ln for ln in MANAGER.splitlines() if f'"event": "{name}"' in ln), None)
    assert line is not None, f"prompts/manager.md does not show the {name} event"
    shape = line[line.index("{") : line.index("}") + 1]
    for field in dataclasses.fields(VARIANTS[name]):
        assert f'"{field.name}"' in shape, f"{name}'s shape in manager.md lacks {field.name}"


@pytest.mark.parametrize("tool", [t.name for t in hivetools.TOOLS])
def test_the_manager_prompt_names_every_hive_tool(tool: str) -> None:
    assert f"`{tool}" in MANAGER


def test_the_manager_prompt_carries_the_policy() -> None:
    text = MANAGER.lower()
    for check in ("role match", "package legitimacy", "cheaper alternative", "blast radius"):
        assert check in text
    assert "never rubber-stamp" in text and "ask_operator" in text
    assert "git -C {{agents_dir}}/<name>/config commit" in MANAGER
    assert "request_apply_commit(agent=<name>, commit_ref=<sha>)" in MANAGER


def test_the_agent_prompt_says_how_to_ask_for_a_change_and_reach_the_operator() -> None:
    assert "`hm1nd`" in AGENT and 'send(to="operator"' in AGENT and "ask_operator(" in AGENT
    assert "request_" not in AGENT  # the approval tools are the manager's alone


def test_every_placeholder_is_one_the_harness_fills() -> None:
    for text in (MANAGER, AGENT):
        assert set(re.findall(r"\{\{(\w+)\}\}", text)) <= {"name", "state_dir", "agents_dir"}


def test_every_setting_is_documented_in_turn_loop_md() -> None:
    doc = DOC.read_text()
    source = Path(__file__).resolve().parents[2] / "services" / "agent" / "settings.py"
    names = set(re.findall(r'"(HIVE_[A-Z_]+|ANTHROPIC_[A-Z_]+)"', source.read_text()))
    assert len(names) >= 10
    for name in sorted(names):
        assert f"`{name}`" in doc, f"document {name} in docs/turn-loop.md"
