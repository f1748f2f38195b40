"""Spending caps by period: when each period's count starts, where an agent's cap for it
comes from, what it has spent in it, and whether it is over.

A cap in force is, first that has one: the operator's (`hivectl budget`, the dashboard, a
notification's link), the agent's approved `[budget]`, the hive's default
(`HIVE_BUDGET_<PERIOD>_USD` in hive.env). The coordinator writes the caps in force into the
`budgets` table; the gateway enforces them against what it meters into `usage`; the
dashboard and `hivectl` read both (`hive.spend` has the queries).

Days and months are the host's: they start at local midnight. Spend counts from the later
of the period's start, the agent's creation and the operator's last reset.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from .vocab import CapSource, Period
from .wire import BudgetRow

MAX_USD = 1e9
"""The largest cap anyone can set: a typo of many zeros is refused rather than taken."""


class BudgetError(ValueError):
    """A cap that is not a number of US dollars from 0 to MAX_USD; the message says which."""


def check_usd(value: object, what: str) -> float:
    """`value` as a cap in US dollars, or BudgetError naming `what`."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BudgetError(f"{what} must be a number of US dollars, such as 5 or 12.50")
    usd = float(value)
    if not math.isfinite(usd) or not 0 <= usd <= MAX_USD:
        raise BudgetError(f"{what} must be from 0 to {MAX_USD:,.0f} US dollars")
    return usd


def defaults(env: Mapping[str, str]) -> dict[Period, float | None]:
    """The hive-wide caps of hive.env; BudgetError for a value that is not a cap."""
    out: dict[Period, float | None] = {}
    for period in Period:
        text = (env.get(period.setting) or "").strip()
        if not text:
            out[period] = None
            continue
        try:
            number = float(text)
        except ValueError:
            raise BudgetError(
                f"{period.setting}={text!r} in hive.env is not a number of US dollars"
            ) from None
        out[period] = check_usd(number, period.setting)
    return out


def resolve(
    operator: float | None, config: float | None, default: float | None
) -> tuple[float | None, CapSource]:
    """The cap in force and where it comes from."""
    if operator is not None:
        return operator, CapSource.OPERATOR
    if config is not None:
        return config, CapSource.CONFIG
    if default is not None:
        return default, CapSource.DEFAULT
    return None, CapSource.NONE


# time ------------------------------------------------------------------------------------


def _local_midnight(t: float) -> datetime:
    return datetime.fromtimestamp(t).astimezone().replace(hour=0, minute=0, second=0, microsecond=0)


def period_start(period: Period, t: float, created_at: float) -> float:
    """When the period holding `t` began (for the total: the agent's creation)."""
    if period is Period.TOTAL:
        return created_at
    midnight = _local_midnight(t)
    if period is Period.MONTHLY:
        midnight = midnight.replace(day=1)
    return midnight.timestamp()


def window_start(period: Period, t: float, created_at: float, counted_from: float) -> float:
    """Since when spend counts against the cap at time `t`."""
    return max(period_start(period, t, created_at), created_at, counted_from)


def next_rollover(t: float) -> float:
    """The next local midnight after `t`: where a daily (and maybe a monthly) count restarts."""
    midnight = _local_midnight(t) + timedelta(days=1)
    # a day of 23 or 25 hours: normalise through the local zone again
    return midnight.replace(hour=0).astimezone().timestamp()


def iso(t: float) -> str:
    """A window's start as the host's local time, to the millisecond: it names the window in
    the budget_reached event and its notice (a reset a second after the agent was made
    starts another window)."""
    return datetime.fromtimestamp(t).astimezone().isoformat(timespec="milliseconds")


# standing ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Standing:
    """One period of one agent's budget, as the operator sees it."""

    period: Period
    cap_usd: float | None
    source: CapSource
    spent_usd: float
    since: float
    config_usd: float | None = None
    operator_usd: float | None = None

    @property
    def over(self) -> bool:
        return self.cap_usd is not None and self.spent_usd >= self.cap_usd

    def sentence(self, agent: str) -> str:
        """What stops the agent, and what lets it go on."""
        return (
            f"{agent} has spent ${self.spent_usd:.2f} {self.period.noun}, its {self.period} "
            f"cap is ${self.cap_usd or 0:.2f} ({self.source}): the operator raises or resets "
            f"it (hivectl budget {agent} --{self.period} N, or --reset {self.period}; or on "
            "the dashboard)"
        )

    def to_dict(self) -> BudgetRow:
        return {
            "period": str(self.period),
            "cap_usd": self.cap_usd,
            "source": str(self.source),
            "spent_usd": round(self.spent_usd, 6),
            "since": self.since,
            "over": self.over,
            "config_usd": self.config_usd,
            "operator_usd": self.operator_usd,
        }


def over(standings: Iterable[Standing]) -> Standing | None:
    """The first period whose cap is reached, if any."""
    return next((s for s in standings if s.over), None)


def tightest(standings: Iterable[Standing]) -> Standing | None:
    """The period to show first: one at its cap, else the one nearest to it."""
    capped = [s for s in standings if s.cap_usd is not None]
    if not capped:
        return None
    return max(capped, key=lambda s: (s.over, s.spent_usd / s.cap_usd if s.cap_usd else 1.0))
