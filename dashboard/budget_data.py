"""The Budgets page's reads: each budget's status in its current period with its projection,
and its past periods (spent against the limit, rollover included). Spend comes from
``tracking.budget_store.spent_in`` (rollups for whole UTC days, raw calls for the edges), so
the page shows what ``python -m tracking budgets list`` and the enforcement count.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import Connection

from dashboard.economics.budget_projection import (
    TRAILING_DAYS,
    BudgetProjection,
    project_budget,
    trailing_days,
)
from tracking.budget_periods import Period, check_timezone, local_midnight, period_at
from tracking.budget_store import (
    Budget,
    BudgetStatus,
    Spend,
    limit_in,
    list_budgets,
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


def daily_spend(
    conn: Connection, budget: Budget, today: date, count: int = TRAILING_DAYS
) -> dict[date, Decimal]:
    """The spend of each of the ``count`` complete local days before ``today``."""
    return {
        day: spent_in(conn, budget, day_period(budget, day)).amount
        for day in trailing_days(today, count)
    }


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
    """The budget's ``count`` periods before the current one, oldest first."""
    period = period_at(budget.period, budget.timezone, now)
    past: list[PastPeriod] = []
    for _ in range(count):
        period = period.previous()
        past.append(PastPeriod(spent_in(conn, budget, period), limit_in(conn, budget, period)))
    return past[::-1]
