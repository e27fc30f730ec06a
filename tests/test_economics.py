"""The pure money calculations behind the Overview's month-end projection."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from dashboard.economics import change, month_to_date, project_month_end


def test_month_to_date_is_exact_and_stays_in_the_month() -> None:
    costs = {
        date(2026, 10, 31): Decimal("100"),
        date(2026, 11, 1): Decimal("0.1"),
        date(2026, 11, 2): Decimal("0.2"),
        date(2026, 11, 3): Decimal("9"),  # after today
    }
    assert month_to_date(costs, date(2026, 11, 2)) == Decimal("0.3")


def test_a_steady_spend_projects_exactly_with_no_band() -> None:
    now = datetime(2026, 11, 11, 0, 0, tzinfo=UTC)  # the 10th is complete, the 11th just began
    costs = {date(2026, 10, 20) + timedelta(days=i): Decimal("10") for i in range(22)}
    p = project_month_end(costs, now)
    assert p.month_to_date == Decimal("100")  # Nov 1..10 (the 11th has $0 so far)
    assert p.daily_rate == pytest.approx(10)
    assert p.days_left == pytest.approx(20)  # the 11th to the 30th
    assert p.expected == pytest.approx(300)
    assert p.low == pytest.approx(300) and p.high == pytest.approx(300)


def test_the_band_widens_with_noise_and_never_goes_below_what_is_spent() -> None:
    now = datetime(2026, 11, 15, 12, 0, tzinfo=UTC)
    costs = {date(2026, 11, 1) + timedelta(days=i): Decimal(5 if i % 2 else 15) for i in range(15)}
    p = project_month_end(costs, now)
    assert p.low < p.expected < p.high
    assert p.low >= float(p.month_to_date)
    assert p.days_left == pytest.approx(15.5)


def test_a_young_store_is_not_diluted_by_days_before_its_first_call() -> None:
    now = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)
    costs = {date(2026, 11, 17): Decimal("4"), date(2026, 11, 18): Decimal("6"),
             date(2026, 11, 19): Decimal("5")}  # fmt: skip
    assert project_month_end(costs, now).daily_rate == pytest.approx(5)


def test_an_empty_store_projects_zero() -> None:
    p = project_month_end({}, datetime(2026, 2, 10, tzinfo=UTC))
    assert (p.expected, p.low, p.high) == (0, 0, 0)


def test_change() -> None:
    assert change(Decimal(15), Decimal(10)) == pytest.approx(0.5)
    assert change(Decimal(5), Decimal(0)) is None
