"""The budget projection, hand-computed: no spend, spend already over, a month's last days, a
week across a DST change, and the weekday-aware rates."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from dashboard.economics.budget_projection import project_budget, trailing_days, weekday_rates
from tracking.budget_periods import period_at


def by_weekday(today: date, weekday: str, weekend: str) -> dict[date, Decimal]:
    """The trailing 28 days: ``weekday`` dollars Monday to Friday, ``weekend`` on Saturdays and
    Sundays."""
    return {d: Decimal(weekend if d.weekday() >= 5 else weekday) for d in trailing_days(today, 28)}


def test_no_spend_projects_nothing_and_no_breach() -> None:
    now = datetime(2026, 3, 10, 9, 30, tzinfo=UTC)
    period = period_at("month", "UTC", now)
    found = project_budget(Decimal(0), Decimal(100), period, now, {})
    assert found.projected == Decimal(0) and found.breach_day is None
    assert found.daily_rates == (Decimal(0),) * 7


def test_spend_already_over_the_limit_breaches_today() -> None:
    now = datetime(2026, 3, 10, 12, tzinfo=UTC)  # a Tuesday, half of it left
    period = period_at("month", "UTC", now)
    found = project_budget(Decimal(120), Decimal(100), period, now, {})
    assert found.breach_day == date(2026, 3, 10) and found.projected == Decimal(120)


def test_a_month_end_adds_the_rest_of_today_and_the_last_day() -> None:
    now = datetime(2026, 3, 30, 12, tzinfo=UTC)  # Monday; March 31 (Tuesday) is the last day
    period = period_at("month", "UTC", now)
    daily = by_weekday(now.date(), "1", "3")
    # half of Monday at $1 a Monday, then Tuesday's $1: 10 + 0.5 + 1
    found = project_budget(Decimal(10), Decimal(11), period, now, daily)
    assert found.projected == Decimal("11.5")
    assert found.breach_day == date(2026, 3, 31)  # 10.5 after today, 11.5 > 11 on the 31st
    assert found.daily_rates == (Decimal(1),) * 5 + (Decimal(3),) * 2


def test_a_week_projects_its_weekend_at_the_weekend_rate() -> None:
    # Friday 2026-03-27 12:00 in Berlin (11:00 UTC): half of Friday, then Saturday and Sunday
    now = datetime(2026, 3, 27, 11, tzinfo=UTC)
    period = period_at("week", "Europe/Berlin", now)
    daily = by_weekday(date(2026, 3, 27), "2", "4")
    found = project_budget(Decimal(5), Decimal(20), period, now, daily)
    assert found.projected == Decimal(5) + 1 + 4 + 4 and found.breach_day is None
    found = project_budget(Decimal(5), Decimal(9), period, now, daily)
    assert found.breach_day == date(2026, 3, 28)  # 6 on Friday, 10 > 9 on Saturday


def test_a_23_hour_day_counts_the_hours_left_of_it() -> None:
    # Sunday 2026-03-29 in Berlin is 23 hours long (clocks go forward at 02:00); at 12:00 CEST
    # (10:00 UTC) 12 of its 23 hours are left: 12/23 of Sunday's $4
    now = datetime(2026, 3, 29, 10, tzinfo=UTC)
    period = period_at("day", "Europe/Berlin", now)
    assert period.length == timedelta(hours=23)
    found = project_budget(Decimal(0), Decimal(1), period, now, by_weekday(now.date(), "2", "4"))
    assert found.projected == Decimal("2.086956522")  # 48/23 to the nano-dollar
    assert found.breach_day == date(2026, 3, 29)


def test_the_rate_of_a_weekday_is_the_mean_of_its_four_days() -> None:
    today = date(2026, 3, 31)
    mondays = [d for d in trailing_days(today) if d.weekday() == 0]
    daily = {d: Decimal(i + 1) for i, d in enumerate(mondays)}  # 1, 2, 3, 4
    assert weekday_rates(daily, today)[0] == Decimal("2.5")
    assert weekday_rates(daily, today)[1:] == (Decimal(0),) * 6


def test_a_moment_outside_the_period_is_refused() -> None:
    period = period_at("day", "UTC", datetime(2026, 3, 1, tzinfo=UTC))
    with pytest.raises(ValueError, match="not in the period"):
        project_budget(Decimal(0), Decimal(1), period, datetime(2026, 3, 2, tzinfo=UTC), {})
