"""The data layer the pages read (``dashboard.data``), on both stores."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import streamlit as st
from sqlalchemy import Engine

from dashboard import data, demo, queries
from dashboard.queries import Filters
from tests.conftest import add_test_prices

END = datetime(2026, 11, 20, 15, tzinfo=UTC)
RANGE = Filters(END.date() - timedelta(days=13), END.date())


@pytest.fixture
def loaded(engine: Engine, store_url: str) -> Iterator[Engine]:
    add_test_prices(store_url)
    demo.load(engine, 3_000, 14, 9, end=END)
    st.cache_data.clear()
    yield engine
    st.cache_data.clear()


def test_shares_of_a_capped_table_are_of_every_groups_cost(
    loaded: Engine, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With more groups than the table holds, each share is of the total the page shows."""
    monkeypatch.setattr(queries, "MAX_GROUPS", 3)
    view = data.cost_view(store_url, RANGE, "user")
    assert view.capped
    nanos = view.table["cost_nanos"]
    total = int(view.totals.cost_usd * 10**9)
    assert view.table["share_pct"].tolist() == pytest.approx((100 * nanos / total).tolist())
    assert view.table["share_pct"].sum() < 100


@pytest.mark.parametrize(
    "dates",
    [(END.date(), END.date()), (RANGE.start, RANGE.start + timedelta(days=2))],
    ids=["today-only", "a-past-range"],
)
def test_yesterday_so_far_follows_the_calendar_not_the_date_range(
    loaded: Engine, store_url: str, dates
) -> None:
    """ "Today so far" is read whatever the range; so is yesterday to set beside it."""
    whole = data.yesterday_so_far(store_url, RANGE, END)
    assert whole[0] > 0
    assert data.yesterday_so_far(store_url, RANGE.with_dates(*dates), END) == whole
