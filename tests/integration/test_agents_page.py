"""The dashboard with more agents than its index lists (HIVE_WEB_INDEX_AGENTS): the index
shows those needing the operator first and says how many more there are; /agents lists
every one."""

from __future__ import annotations

import os
import signal
import time

from tests.browser.webtest import RunningWeb
from tests.hivetest import RunningHive, hivectl, spawn
from tests.integration.flowtools import harness_pid


def test_the_index_caps_its_agents_and_the_agents_page_has_them_all(
    hive: RunningHive, env: dict[str, str]
) -> None:
    names = [f"a{i:02d}" for i in range(8)]
    spawn(hive, *names)
    assert hivectl(env, "stop", "a06").returncode == 0  # stopped by the operator: calm
    os.kill(harness_pid(hive, "a07"), signal.SIGKILL)  # crashed: the operator's to see
    deadline = time.monotonic() + 30
    while hive.admin("agent_status", name="a07")["agents"][0]["state"] != "failed":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    web = RunningWeb(env, HIVE_WEB_INDEX_AGENTS="4")
    try:
        c = web.client()
        index = c.get("/").text
        listed = [n for n in ["hm1nd", *names] if f'id="agent-{n}"' in index]
        assert listed == ["hm1nd", "a00", "a01", "a07"]  # a07 first, the rest in order
        assert index.index('id="agent-a07"') < index.index('id="agent-hm1nd"')
        assert "4 of 9 agents here" in index and 'href="/agents">all 9 agents' in index
        agents = c.get("/agents").text
        assert all(f'id="agent-{n}"' in agents for n in ["hm1nd", *names])
        assert 'id="agent-a06" data-status="stopped"' in agents
    finally:
        web.stop()
