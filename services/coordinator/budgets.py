"""Agents' spending caps as the coordinator keeps them: the `budgets` rows the gateway
enforces, brought in line with each applied `[budget]` and the hive's defaults, and changed
by the operator (a cap of their own, or a reset that forgives what was spent so far).

The operator's cap wins over the config's until they drop it; changing either, or a reset,
rings the gateway (the agents table changed), which takes it at once.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from ..hive import budget
from ..hive import log as hlog
from ..hive.agentconfig import AgentConfig
from ..hive.budget import Standing
from ..hive.db import Agent, Budget, now, write_tx
from ..hive.protocol import Refusal
from ..hive.spend import rows_of, standing
from ..hive.vocab import CapSource, Code, Period
from .effects import Effects


class BudgetRefused(Refusal):
    code = Code.NOT_FOUND


def _usd(cap: float | None) -> str:
    return "none" if cap is None else f"${cap:.2f}"


def reply_of(name: str, standings: list[Standing]) -> dict[str, Any]:
    """The `budget` and `set_budget` reply: each period, and the one that stops the agent."""
    stop = budget.over(standings)
    return {
        "agent": name,
        "periods": [s.to_dict() for s in standings],
        "over": None if stop is None else str(stop.period),
        "detail": None if stop is None else stop.sentence(name),
    }


class Budgets:
    def __init__(self, effects: Effects, env: Mapping[str, str] | None = None) -> None:
        """BudgetError (a sentence) for a hive-wide default that is not a cap."""
        self.effects = effects
        self.defaults = budget.defaults(os.environ if env is None else env)

    # the caps in force -------------------------------------------------------------------
    def apply_config(self, name: str, config: AgentConfig) -> None:
        """The applied config's `[budget]` (and the defaults) into `name`'s rows."""
        if self._write(name, config=config.budget, by=None):
            self.effects.changed("agents")

    def sync(self, configs: Mapping[str, AgentConfig | None]) -> None:
        """At start: every agent's rows as its applied config and today's defaults say."""
        changed = False
        for name, config in configs.items():
            changed |= self._write(name, config=config.budget if config else None, by=None)
        if changed:
            self.effects.changed("agents")

    def set(
        self,
        name: str,
        caps: Mapping[Period, float | None],
        reset: list[Period],
        by: str,
    ) -> list[Standing]:
        """The operator's caps (None drops theirs: the config's or the default applies again)
        and resets (spend before now no longer counts in that period); the standing after."""
        agent = Agent.get_or_none(Agent.name == name)
        if agent is None:
            raise BudgetRefused(f"no agent named {name!r}")
        self._write(name, operator=caps, reset=reset, by=by)
        words = [
            f"{p} cap {_usd(c)}" if c is not None else f"{p} cap back to its config's"
            for p, c in caps.items()
        ]
        words += [f"{p} count reset" for p in reset]
        hlog.log(
            f"{name}'s budget: {', '.join(words) or 'unchanged'} (by {by})",
            kind="operator_action",
            agent=name,
            operator=by,
        )
        self.effects.changed("agents")
        return self.show(name)

    def show(self, name: str) -> list[Standing]:
        agent = Agent.get_or_none(Agent.name == name)
        if agent is None:
            raise BudgetRefused(f"no agent named {name!r}")
        return standing(agent, rows_of([name]).get(name, {}), now())

    def _write(
        self,
        name: str,
        *,
        config: Mapping[Period, float] | None = None,
        operator: Mapping[Period, float | None] | None = None,
        reset: list[Period] | None = None,
        by: str | None,
    ) -> bool:
        """Bring `name`'s rows in line; whether a cap in force or a count changed.

        `config` None leaves the config's caps as they are (an agent with no applied config
        yet keeps none); an operator cap of None drops the operator's."""
        changed = False
        t = now()
        with write_tx():
            if not Agent.select().where(Agent.name == name).exists():
                return False
            have = rows_of([name]).get(name, {})
            for period in Period:
                row = have.get(period)
                config_usd = row.config_usd if row else None
                if config is not None:
                    config_usd = config.get(period)
                operator_usd = row.operator_usd if row else None
                if operator is not None and period in operator:
                    operator_usd = operator[period]
                counted_from = row.counted_from if row else 0.0
                if reset and period in reset:
                    counted_from = t
                cap, source = budget.resolve(operator_usd, config_usd, self.defaults[period])
                fields = {
                    "config_usd": config_usd,
                    "operator_usd": operator_usd,
                    "cap_usd": cap,
                    "source": str(source),
                    "counted_from": counted_from,
                }
                if row is None and source is CapSource.NONE and not counted_from:
                    continue  # nothing to keep for an uncapped period
                if row is not None and all(getattr(row, k) == v for k, v in fields.items()):
                    continue
                changed |= row is None or row.cap_usd != cap or row.counted_from != counted_from
                if row is None:
                    Budget.create(
                        agent=name, period=str(period), updated_at=t, updated_by=by, **fields
                    )
                else:
                    Budget.update(updated_at=t, updated_by=by or row.updated_by, **fields).where(
                        Budget.id == row.id
                    ).execute()
                if cap != (row.cap_usd if row else None):
                    hlog.log(
                        f"{name}'s {period} cap is now {_usd(cap)} ({source})",
                        kind="lifecycle",
                        agent=name,
                    )
        return changed
