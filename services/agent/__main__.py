"""Entry point of hive-agent, the harness in each agent's container: build the pieces, run."""

from __future__ import annotations

import os
import sys

from ..hive.log import set_identifier
from .bus import Bus
from .conversation import Conversation
from .loop import Harness
from .prompt import system_blocks
from .settings import RESUMED, SettingsError, from_env
from .shell import BashSession
from .tools import Toolbox
from .turn import TurnRunner
from .turnstate import TurnReporter


def main(argv: list[str] | None = None) -> int:
    set_identifier("hive-agent")
    try:
        settings = from_env()
    except SettingsError as e:
        print(f"hive-agent: {e}", file=sys.stderr)
        return 2
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    tool_env = {k: v for k, v in os.environ.items() if k not in ("ANTHROPIC_API_KEY", RESUMED)}
    bus = Bus(settings.socket, settings.agent)
    conversation = Conversation.load(settings.state_dir, settings.agent)
    toolbox = Toolbox(
        bus,
        BashSession(settings.state_dir, tool_env, keep=settings.resumed),
        manager=settings.is_manager,
        bash_timeout=settings.bash_timeout,
    )
    reporter = TurnReporter(bus)
    runner = TurnRunner(settings, bus, conversation, toolbox, reporter, system_blocks(settings))
    harness = Harness(settings, bus, conversation, runner, reporter)
    harness.install_signal_handlers()
    harness.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
