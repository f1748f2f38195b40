"""The `process` backend: an agent is a plain subprocess on the host, no isolation.

For development and fast tests. It prepares the agent's state directory; running the
harness as a subprocess arrives with the harness itself.
"""

from __future__ import annotations

from services.hive.paths import Paths


class ProcessBackend:
    name = "process"

    def __init__(self, paths: Paths) -> None:
        self.paths = paths

    def create(self, agent: str) -> None:
        state = self.paths.agent_state(agent)
        state.mkdir(parents=True, exist_ok=True)
        state.chmod(0o700)
