"""The Overview's month-end projection: this month's cost so far and where it is heading."""

from __future__ import annotations

import calendar
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

Z_90 = 1.645  # two-sided 90% band of a normal distribution
MIN_HISTORY_DAYS = 7


@dataclass(frozen=True)
class Projection:
    """Where this month's cost is heading: the expected total and a 90% band around it."""

    month_to_date: Decimal
    expected: float
    low: float
    high: float
    daily_rate: float  # the recent average day the projection extends
    days_left: float  # what is left of the month, today's unelapsed part included
    history_days: int  # complete days since the first call that the rate comes from

    @property
    def enough_history(self) -> bool:
        """A week of complete days at least: fewer give a band that means nothing."""
        return self.history_days >= MIN_HISTORY_DAYS


def month_to_date(costs: Mapping[date, Decimal], today: date) -> Decimal:
    """Exact sum of this month's daily costs up to and including today."""
    first = today.replace(day=1)
    return sum((v for d, v in costs.items() if first <= d <= today), Decimal(0))


def project_month_end(costs: Mapping[date, Decimal], now: datetime, window: int = 14) -> Projection:
    """Month to date plus the recent daily rate times what is left of the month.

    The rate is the mean of the last ``window`` complete days (today is still running, so it is
    not one of them); days without calls count as $0. The band assumes days vary independently
    around that mean: sd of a day times the square root of the days left, at 90%. It never goes
    below what is already spent.
    """
    today = now.date()
    mtd = month_to_date(costs, today)
    days = [today - timedelta(days=i) for i in range(1, window + 1)]
    history = [float(costs.get(d, Decimal(0))) for d in days]
    seen = [d for d in days if d >= min(costs, default=today)]
    history = history[: max(1, len(seen))]
    rate = sum(history) / len(history)
    spread = (
        math.sqrt(sum((x - rate) ** 2 for x in history) / (len(history) - 1))
        if len(history) > 1
        else 0.0
    )
    month_days = calendar.monthrange(today.year, today.month)[1]
    elapsed_today = (now.hour * 3600 + now.minute * 60 + now.second) / 86400
    days_left = (month_days - today.day) + (1 - elapsed_today)
    expected = float(mtd) + rate * days_left
    margin = Z_90 * spread * math.sqrt(days_left)
    return Projection(
        month_to_date=mtd,
        expected=expected,
        low=max(float(mtd), expected - margin),
        high=expected + margin,
        daily_rate=rate,
        days_left=days_left,
        history_days=len(seen),
    )


def change(current: Decimal, previous: Decimal) -> float | None:
    """Relative change from ``previous`` to ``current``; None when there is nothing to compare
    (``previous`` under a cent: a percentage of almost nothing says nothing)."""
    if abs(previous) < Decimal("0.01"):
        return None
    return float((current - previous) / previous)
