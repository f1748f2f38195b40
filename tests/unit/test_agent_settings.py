"""The harness's environment contract: what it needs, what it defaults, what it refuses."""

from __future__ import annotations

from pathlib import Path

import pytest
from hyperhive.agent.settings import DEFAULT_MODEL, SettingsError, from_env


def base(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "HIVE_AGENT": "alice",
        "HIVE_SOCKET": str(tmp_path / "hive.sock"),
        "HIVE_GATEWAY_SOCKET": str(tmp_path / "api.sock"),
        "HIVE_AGENT_STATE": str(tmp_path / "state"),
        **extra,
    }


def test_the_minimum_environment_and_its_defaults(tmp_path: Path) -> None:
    s = from_env(base(tmp_path))
    assert (s.agent, s.kind, s.is_manager) == ("alice", "agent", False)
    assert s.default_model == DEFAULT_MODEL and s.gateway_socket == tmp_path / "api.sock"
    assert s.max_retries == 0 and s.compact_at_tokens == 150_000
    assert from_env(base(tmp_path, HIVE_AGENT="hm1nd")).kind == "manager"


def test_the_config_gives_the_model_and_prompt_and_a_bad_one_falls_back(tmp_path: Path) -> None:
    good = tmp_path / "agent.toml"
    good.write_text('model = "claude-opus-4-1"\nsystem_prompt = "You test."\n')
    s = from_env(base(tmp_path, HIVE_AGENT_CONFIG=str(good)))
    assert s.default_model == "claude-opus-4-1" and s.config.system_prompt == "You test."
    bad = tmp_path / "bad.toml"
    bad.write_text("nonsense = [")
    assert from_env(base(tmp_path, HIVE_AGENT_CONFIG=str(bad))).default_model == DEFAULT_MODEL


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        ({"HIVE_AGENT": ""}, "HIVE_AGENT is not set"),
        ({"HIVE_GATEWAY_SOCKET": ""}, "HIVE_GATEWAY_SOCKET is not set"),
        ({"HIVE_AGENT_KIND": "boss"}, "must be 'manager' or 'agent'"),
        ({"HIVE_AGENT_COMPACT_TOKENS": "lots"}, "is not a number"),
        ({"HIVE_AGENT_RETRY_BASE": "-1"}, "must be at least 0"),
    ],
)
def test_a_bad_environment_is_one_sentence(
    tmp_path: Path, extra: dict[str, str], error: str
) -> None:
    with pytest.raises(SettingsError, match=error):
        from_env(base(tmp_path, **extra))


def test_hive_agent_without_its_environment_says_what_is_missing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from hyperhive.agent.__main__ import main

    monkeypatch.delenv("HIVE_AGENT", raising=False)
    assert main([]) == 2
    assert "HIVE_AGENT is not set" in capsys.readouterr().err


def test_a_key_in_the_environment_is_not_the_harnesss_to_use(tmp_path: Path) -> None:
    """The harness has no key setting at all: the gateway holds the key."""
    s = from_env(base(tmp_path, ANTHROPIC_API_KEY="sk-ant-x", ANTHROPIC_BASE_URL="http://x"))
    assert "sk-ant-x" not in repr(s) and "http://x" not in repr(s)
