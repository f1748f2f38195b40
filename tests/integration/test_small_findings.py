"""The low findings, tried as an agent or the operator would, on a real coordinator: NUL in
question options, names such as `a-` and `a--b`, and what an agent calling `kill` is told.
"""

from __future__ import annotations

import pytest
from hyperhive.hive.client import Refused

from tests.hivetest import RunningHive, hivectl


def test_nul_in_question_options_is_refused(hive: RunningHive) -> None:
    with hive.admin() as a:
        a.call("spawn", name="alice")
    with hive.agent("alice") as c:
        with pytest.raises(Refused, match="an item of field 'options' must not contain NUL"):
            c.call("ask_operator", question="which?", options=["yes", "no\x00<script>"])
        with pytest.raises(Refused, match="'question' must not contain NUL"):
            c.call("ask_operator", question="which\x00?", options=["yes"])
        assert c.call("ask_operator", question="which?", options=["yes", "no"])["id"] >= 1
    with hive.admin() as a:
        (q,) = a.call("questions")["questions"]
        assert q["options"] == ["yes", "no"]
    with hive.admin() as a, pytest.raises(Refused, match="'answer' must not contain NUL"):
        a.call("answer_question", id=q["id"], answer=["yes\x00"])


@pytest.mark.parametrize("name", ["a-", "a--b", "web--1", "x" * 30 + "-"])
def test_names_with_a_trailing_or_double_dash_are_refused(hive: RunningHive, name: str) -> None:
    with hive.admin() as a, pytest.raises(Refused, match="'-' must sit between"):
        a.call("spawn", name=name)
    with hive.manager() as m:
        for cmd in ("request_spawn", "request_init_config"):
            with pytest.raises(Refused, match="'-' must sit between"):
                m.call(cmd, name=name)
    out = hivectl(hive.env, "spawn", name)
    assert out.returncode == 1 and "no '--'" in out.stderr
    assert not (hive.paths.agents_dir / name).exists()
    with hive.admin() as a:
        assert name not in {r["name"] for r in a.call("list")["agents"]}
        assert a.call("spawn", name="a-b")["agent"]["name"] == "a-b"  # a '-' between is fine


def test_an_agent_calling_kill_is_told_which_sockets_it_is_for(hive: RunningHive) -> None:
    with hive.admin() as a:
        a.call("spawn", name="alice")
    with hive.agent("alice") as c:
        with pytest.raises(Refused) as e:
            c.call("kill", agent="hm1nd")
        assert str(e.value) == (
            "command 'kill' is only available on the admin socket and the manager's socket"
        )
        with pytest.raises(Refused, match=r"only available on the manager's socket$"):
            c.call("request_spawn", name="bob")
        with pytest.raises(Refused, match=r"only available on the admin socket$"):
            c.call("drop", id=1)
    with hive.admin() as a, pytest.raises(Refused, match="agent sockets"):
        a.call("set_aside", reason="not the operator's")
