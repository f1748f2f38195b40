"""TurnState: what the harness tells the coordinator it is doing, with the turn's numbers.

Each turn gets an id, sent with every report and to the model gateway (X-Hive-Turn), so
the operator's figures for the turn are the gateway's metering of it; the numbers sent
here are the harness's own count. Reporting is best effort: a hive that does not answer
never stops a turn, it only costs a warning in the journal.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from ..hive.client import Refused
from ..hive.log import WARNING, log
from ..hive.pricing import Usage
from ..hive.vocab import TurnPhase
from .bus import Bus, BusDown

MAX_DETAIL = 4000


class TurnReporter:
    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.started_at: float | None = None
        self.ended_at: float | None = None
        self.turn_id: str | None = None
        self.usage = Usage()

    def begin(self) -> None:
        self.started_at = time.time()
        self.ended_at = None
        self.turn_id = f"{int(self.started_at)}-{secrets.token_hex(4)}"
        self.usage = Usage()

    def report(
        self, state: TurnPhase, *, tool: str | None = None, detail: str | None = None
    ) -> None:
        fields: dict[str, Any] = {
            "state": state,
            "input_tokens": self.usage.input_tokens,
            "output_tokens": self.usage.output_tokens,
            "cached_tokens": self.usage.cached_tokens,
            "cost_usd": round(self.usage.cost_usd, 6),
        }
        if tool is not None:
            fields["tool"] = tool[:200]
        if detail is not None:
            fields["detail"] = detail[:MAX_DETAIL]
        if self.started_at is not None:
            fields["started_at"] = self.started_at
        if self.ended_at is not None:
            fields["ended_at"] = self.ended_at
        if self.turn_id is not None:
            fields["turn"] = self.turn_id
        try:
            self.bus.call("set_turn_state", **fields)
        except (Refused, BusDown) as e:
            log(f"could not report turn state {state}: {e}", agent=self.bus.agent, priority=WARNING)

    def thinking(self, detail: str | None = None) -> None:
        self.report(TurnPhase.THINKING, detail=detail)

    def tool(self, name: str, detail: str | None) -> None:
        self.report(TurnPhase.TOOL, tool=name, detail=detail)

    def waiting(self, detail: str) -> None:
        self.report(TurnPhase.WAITING, tool="recv", detail=detail)

    def retrying(self, detail: str) -> None:
        self.report(TurnPhase.ERROR, detail=detail)

    def end(self, detail: str, *, error: bool = False) -> None:
        self.ended_at = time.time()
        self.report(TurnPhase.ERROR if error else TurnPhase.IDLE, detail=detail)

    def idle(self, detail: str | None = None) -> None:
        self.report(TurnPhase.IDLE, detail=detail)

    def needs_login(self, detail: str) -> None:
        self.report(TurnPhase.NEEDS_LOGIN, detail=detail)

    def blocked(self, phase: TurnPhase, detail: str) -> None:
        """needs_login or over_budget: the harness waits for the operator."""
        self.report(phase, detail=detail)
