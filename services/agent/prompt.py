"""The system prompt of a turn: the role's prompt file, the config's additions, the facts.

Built once per harness run so it stays byte-identical across turns (the prompt cache
depends on that); a config change restarts the harness anyway.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from .settings import Settings
from .tools import CACHE


def role_prompt(kind: str) -> str:
    name = "manager.md" if kind == "manager" else "agent.md"
    return (
        resources.files(f"{__name__.rpartition('.')[0]}.prompts")
        .joinpath(name)
        .read_text(encoding="utf-8")
    )


def fill(text: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    return text


def system_blocks(settings: Settings) -> list[dict[str, Any]]:
    """The system param: text blocks, the last one marked for the prompt cache."""
    values = {
        "name": settings.agent,
        "state_dir": str(settings.state_dir),
        "agents_dir": str(settings.agents_dir or "/agents"),
    }
    blocks: list[dict[str, Any]] = [
        {"type": "text", "text": fill(role_prompt(settings.kind), values).strip()}
    ]
    additions = settings.config.system_prompt.strip()
    if additions:
        blocks.append(
            {
                "type": "text",
                "text": "Instructions from your agent config (agent.toml):\n\n" + additions,
            }
        )
    blocks[-1] = {**blocks[-1], "cache_control": CACHE}
    return blocks
