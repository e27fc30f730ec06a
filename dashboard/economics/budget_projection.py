"""Where a budget's period is heading: the spend projected at the period's end and the local
day it is projected to pass its limit.

Pure (no Streamlit, no SQL), exact Decimal. The rule: what is already spent in the period, plus,
for the rest of the period, each local day's expected spend, which is the average of the same
weekday over the trailing complete days (28 by default: four of each weekday, so a weekday-heavy
scope is projected weekday-heavy); the rest of today counts in proportion to what is left of it
(a local day is 23 or 25 hours across a DST change). A day missing from ``daily`` spent $0.
The projection is rounded to the nano-dollar (the only rounding).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

from tracking.budget_periods import Period, check_timezone, local_midnight
from tracking.sqltypes import NANO

TRAILING_DAYS = 28
_DAY = timedelta(days=1)


@dataclass(frozen=True)
class BudgetProjection:
    """``projected``: the period's spend at its end; ``breach_day``: the first local day on
    which spend passes the limit (today when it is over already; None when the projection stays
    within it); ``daily_rates``: the expected spend of a weekday (0 = Monday)."""

    projected: Decimal
    breach_day: date | None
    daily_rates: tuple[Decimal, ...]


def trailing_days(today: date, count: int = TRAILING_DAYS) -> list[date]:
    """The ``count`` complete local days before ``today``, oldest first: where the rates come
    from."""
    return [today - timedelta(days=count - i) for i in range(count)]


def weekday_rates(
    daily: Mapping[date, Decimal], today: date, count: int = TRAILING_DAYS
) -> tuple[Decimal, ...]:
    """The average spend of each weekday (Monday first) over the trailing ``count`` days."""
    totals = [Decimal(0)] * 7
    seen = [0] * 7
    for day in trailing_days(today, count):
        totals[day.weekday()] += daily.get(day, Decimal(0))
        seen[day.weekday()] += 1
    return tuple(t / n if n else Decimal(0) for t, n in zip(totals, seen, strict=True))


def _fraction_left(period: Period, now: datetime, today: date) -> Decimal:
    """The part of today still to come, as a fraction of today's length."""
    zone = check_timezone(period.timezone)
    start = local_midnight(today, zone)
    end = min(local_midnight(today + _DAY, zone), period.end)
    length = local_midnight(today + _DAY, zone) - start
    left = max(end - now.astimezone(UTC), timedelta(0))
    return Decimal(left // timedelta(microseconds=1)) / Decimal(length // timedelta(microseconds=1))


def project_budget(
    spent: Decimal,
    limit: Decimal,
    period: Period,
    now: datetime,
    daily: Mapping[date, Decimal],
    count: int = TRAILING_DAYS,
) -> BudgetProjection:
    """The projection of a period holding ``now`` whose scope has spent ``spent`` of
    ``limit`` so far; ``daily`` maps local days (at least the trailing ``count`` before
    today) to their spend."""
    if now not in period:
        raise ValueError(f"{now.isoformat()} is not in the period {period.label}")
    today = now.astimezone(check_timezone(period.timezone)).date()
    rates = weekday_rates(daily, today, count)
    running = spent
    breach = today if running > limit else None
    running += rates[today.weekday()] * _fraction_left(period, now, today)
    if breach is None and running > limit:
        breach = today
    day = today + _DAY
    while day <= period.last_day:
        running += rates[day.weekday()]
        if breach is None and running > limit:
            breach = day
        day += _DAY
    return BudgetProjection(running.quantize(NANO, ROUND_HALF_EVEN), breach, rates)
