"""Breakdowns of a day frame: plain pandas, exact money."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pandas as pd
import pytest

from dashboard import breakdown
from dashboard.queries import FRAME_COLUMNS

D1, D2 = date(2026, 11, 1), date(2026, 11, 2)


def frame() -> pd.DataFrame:
    rows = [  # day, provider, model, feature, calls, errors, unpriced, in, out, cost nanos
        (D1, "openai", "gpt-4o", "chat", 10, 1, 0, 100, 50, 100_000_001),
        (D1, "anthropic", "claude", "summarize", 5, 0, 5, 10, 5, 0),
        (D2, "openai", "gpt-4o", "chat", 20, 2, 0, 200, 90, 200_000_002),
        (D2, "openai", "whisper-1", "transcribe", 4, 0, 0, 0, 0, 300_000_000),
    ]
    return pd.DataFrame(rows, columns=list(FRAME_COLUMNS))


def test_totals_are_exact() -> None:
    t = breakdown.totals(frame())
    assert t.cost_usd == Decimal("0.600000003")
    assert (t.calls, t.error_calls, t.unpriced_calls) == (39, 3, 5)
    assert t.error_rate == pytest.approx(3 / 39)


def test_daily_costs_and_between() -> None:
    assert breakdown.daily_costs(frame()) == {
        D1: Decimal("0.100000001"),
        D2: Decimal("0.500000002"),
    }
    assert breakdown.totals(breakdown.between(frame(), D2, D2)).calls == 24


def test_group_table_sorts_by_cost_and_shares_sum_to_100() -> None:
    table = breakdown.group_table(frame(), "feature")
    assert list(table["feature"]) == ["chat", "transcribe", "summarize"]
    assert list(table["calls"]) == [30, 4, 5]
    assert table["share_pct"].sum() == pytest.approx(100)
    by_day = breakdown.group_table(frame(), "day")
    assert list(by_day["day"]) == [D1, D2]
    with pytest.raises(ValueError, match="group must be one of"):
        breakdown.group_table(frame(), "user")


def test_a_group_of_unpriced_calls_has_no_cost_not_zero() -> None:
    table = breakdown.group_table(frame(), "feature")
    unpriced = table.set_index("feature").loc["summarize"]
    assert pd.isna(unpriced["cost_usd"]) and pd.isna(unpriced["share_pct"])
    assert unpriced["cost_nanos"] == 0 and unpriced["unpriced"] == 5
    assert table.set_index("feature").loc["chat", "cost_usd"] == pytest.approx(0.300000003)
    all_unpriced = breakdown.totals(frame()[frame()["feature"] == "summarize"])
    assert all_unpriced.all_unpriced and not breakdown.totals(frame()).all_unpriced


def test_shares_of_a_top_table_are_of_the_whole() -> None:
    table = breakdown.group_table(frame(), "feature").head(1)
    shared = breakdown.share_of(table, Decimal("0.600000003"))
    assert shared["share_pct"].iloc[0] == pytest.approx(50)


def test_daily_by_provider() -> None:
    daily = breakdown.daily_by(frame(), "provider")
    assert len(daily) == 3 and daily["cost_usd"].sum() == pytest.approx(0.600000003)
    anthropic = daily.set_index("provider").loc["anthropic"]  # its calls are all unpriced
    assert pd.isna(anthropic["cost_usd"]) and anthropic["cost_nanos"] == 0
