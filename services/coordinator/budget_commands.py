"""The admin-socket commands of spending caps: `budget` shows an agent's periods, spent
against cap; `set_budget` sets the operator's caps and resets counts (recorded in the audit
trail as a cap change)."""

from __future__ import annotations

from typing import Any

from ..hive import budget
from ..hive import protocol as p
from ..hive.names import validate_agent_name
from ..hive.vocab import Period
from .budgets import reply_of
from .connection import Connection
from .context import Hive
from .registry import OPERATOR_ONLY, Result, command, operator_identity


@command(
    "budget", OPERATOR_ONLY, "budget {name}: each period's cap, where it comes from, and the spend"
)
def show(hive: Hive, conn: Connection, req: dict[str, Any]) -> Result:
    name = validate_agent_name(p.get_str(req, "name", max_bytes=64))
    return reply_of(name, hive.budgets.show(name))


def _caps(req: dict[str, Any]) -> dict[Period, float | None]:
    caps: dict[Period, float | None] = {}
    for period in Period:
        if period.config_key not in req:
            continue
        value = req[period.config_key]
        if value is None:
            caps[period] = None  # the operator's cap dropped
            continue
        try:
            caps[period] = budget.check_usd(value, f"field {period.config_key!r}")
        except budget.BudgetError as e:
            raise p.ProtocolError(str(e)) from None
    return caps


def _resets(req: dict[str, Any]) -> list[Period]:
    words = p.get_str_list(req, "reset", [], max_items=len(Period), max_bytes=16)
    try:
        return [Period(w) for w in dict.fromkeys(words)]
    except ValueError:
        raise p.ProtocolError(
            f"field 'reset' must list periods among {', '.join(Period)}"
        ) from None


@command(
    "set_budget",
    OPERATOR_ONLY,
    "set_budget {name, daily_usd?, monthly_usd?, total_usd?, reset?}: the operator's caps "
    "(a number; null gives the config's back) and counts restarted from now",
)
def set_budget(hive: Hive, conn: Connection, req: dict[str, Any]) -> Result:
    name = validate_agent_name(p.get_str(req, "name", max_bytes=64))
    caps, reset = _caps(req), _resets(req)
    if not caps and not reset:
        raise p.ProtocolError(
            "set_budget needs a cap (daily_usd, monthly_usd, total_usd) or a reset"
        )
    return reply_of(name, hive.budgets.set(name, caps, reset, operator_identity(conn, req)))
