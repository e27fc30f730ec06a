"""The Budgets page's reads: each budget's status in its current period with its projection,
and its past periods (spent against the limit, rollover included). Spend comes from
``tracking.budget_store.spent_in`` (rollups for whole UTC days, raw calls for the edges), so
the page shows what ``python -m tracking budgets list`` and the enforcement count.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from itertools import pairwise

from sqlalchemy import Connection

from dashboard.economics.budget_projection import (
    TRAILING_DAYS,
    BudgetProjection,
    project_budget,
    trailing_days,
)
from tracking.budget_periods import (
    Period,
    check_timezone,
    local_midnight,
    period_at,
    rolled_limit,
    split_days,
)
from tracking.budget_store import (
    Budget,
    BudgetStatus,
    Spend,
    calls_spend,
    carries_into,
    daily_rollup_spend,
    list_budgets,
    rollup_for,
    spent_in,
    status,
)

HISTORY_PERIODS = 6  # past periods shown per budget


@dataclass(frozen=True)
class BudgetRow:
    """A budget now: its status (spend, limit, % used) and where its period is heading."""

    status: BudgetStatus
    projection: BudgetProjection


@dataclass(frozen=True)
class PastPeriod:
    """One period of a budget: what was spent of which limit (rollover included)."""

    spend: Spend
    limit: Decimal

    @property
    def period(self) -> Period:
        return self.spend.period


def day_period(budget: Budget, day: date) -> Period:
    """The local calendar day ``day`` in the budget's timezone, as a period."""
    return period_at("day", budget.timezone, local_midnight(day, check_timezone(budget.timezone)))


def spends_of(conn: Connection, budget: Budget, periods: Sequence[Period]) -> list[Spend]:
    """What the budget's scope spent in each of ``periods``, as ``spent_in`` counts it, with
    one grouped rollup query for all their whole UTC days (only the edges of a non-UTC
    period, or every call of a tag scope, are read from the raw calls)."""
    if rollup_for(budget) is None:
        return [spent_in(conn, budget, p) for p in periods]
    splits = [split_days(p) for p in periods]
    days = [d for split in splits for d in split.whole_days]
    by_day = daily_rollup_spend(conn, budget, min(days), max(days)) if days else {}
    found = []
    for period, split in zip(periods, splits, strict=True):
        parts = [calls_spend(conn, budget, lo, hi) for lo, hi in split.raw_ranges]
        parts += [by_day[d] for d in split.whole_days if d in by_day]
        amount = sum((a for a, _ in parts), Decimal(0))
        found.append(Spend(period, amount, sum(n for _, n in parts)))
    return found


def daily_spend(
    conn: Connection, budget: Budget, today: date, count: int = TRAILING_DAYS
) -> dict[date, Decimal]:
    """The spend of each of the ``count`` complete local days before ``today``."""
    periods = [day_period(budget, day) for day in trailing_days(today, count)]
    return {s.period.first_day: s.amount for s in spends_of(conn, budget, periods)}


def budget_row(conn: Connection, budget: Budget, now: datetime) -> BudgetRow:
    found = status(conn, budget, now)
    today = now.astimezone(check_timezone(budget.timezone)).date()
    projection = project_budget(
        found.spend.amount, found.limit, found.spend.period, now, daily_spend(conn, budget, today)
    )
    return BudgetRow(found, projection)


def budget_rows(conn: Connection, now: datetime) -> list[BudgetRow]:
    """Every budget (by name) with its status and projection at ``now``."""
    return [budget_row(conn, b, now) for b in list_budgets(conn)]


def history(
    conn: Connection, budget: Budget, now: datetime, count: int = HISTORY_PERIODS
) -> list[PastPeriod]:
    """The budget's ``count`` periods before the current one, oldest first, each with its
    limit (rollover carried from the period before it, as ``limit_in`` rules)."""
    periods = [period_at(budget.period, budget.timezone, now)]
    for _ in range(count + 1):  # one more: what the oldest shown carries from
        periods.insert(0, periods[0].previous())
    spends = spends_of(conn, budget, periods[:-1])
    past = []
    for before, spend in pairwise(spends):
        limit = budget.limit_usd
        if carries_into(budget, spend.period):
            limit = rolled_limit(budget.limit_usd, before.amount)
        past.append(PastPeriod(spend, limit))
    return past
