"""The one data layer the pages speak to: cached reads per store URL and arguments, each view
returned with its exact totals, and the state of the store. Pages hold no engine and decide
neither which table to read nor how to total it.

Kept apart from ``queries`` so that those stay plain functions (benchmarks and tests call them
without Streamlit).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import pandas as pd
import streamlit as st
from sqlalchemy.exc import DBAPIError

from dashboard import breakdown, cache, demo, queries, raw_calls
from dashboard.breakdown import Totals
from dashboard.db import engine
from dashboard.filter_model import Filters, frame_window, today
from dashboard.queries import StoreSpan
from dashboard.raw_calls import Latency
from tracking.events import MAX_AHEAD

TTL = 60  # seconds: new calls show up within a minute


@dataclass(frozen=True)
class StoreState:
    """What the store can show: ``missing`` (no tables, or unreachable), ``empty`` or ``ready``."""

    kind: Literal["missing", "empty", "ready"]
    span: StoreSpan
    error: str | None = None
    future_calls: int = 0  # calls dated more than a day ahead (a wrong clock, a typo)
    latest_future: datetime | None = None


def store_state(url: str) -> StoreState:
    """The one place a store without tables (or out of reach) is told from an empty one."""
    try:
        span = _span(url)
    except DBAPIError as exc:
        first = str(exc.orig if exc.orig is not None else exc).splitlines()[0]
        return StoreState("missing", StoreSpan(None, None), first[:300])
    if span.empty:
        return StoreState("empty", span)
    future, latest = _future_calls(url)
    return StoreState("ready", span, None, future, latest)


@st.cache_data(ttl=TTL, show_spinner=False)
def _span(url: str) -> StoreSpan:
    return queries.store_span(engine(url))


@st.cache_data(ttl=TTL, show_spinner=False)
def _future_calls(url: str) -> tuple[int, datetime | None]:
    # the bound record() refuses calls beyond: those stored anyway came another way
    return raw_calls.calls_after(engine(url), datetime.now(UTC) + MAX_AHEAD)


@st.cache_data(ttl=TTL, show_spinner=False)
def day_frame(url: str, f: Filters) -> pd.DataFrame:
    return queries.day_frame(engine(url), f)


def page_frame(url: str, f: Filters) -> pd.DataFrame:
    """The day frame of a page: the range, this month and the projection's days, in one read
    shared by the Overview, the Costs page and the sidebar's choices."""
    return day_frame(url, f.with_dates(*frame_window(f, today())))


@dataclass(frozen=True)
class CostView:
    """A Costs view: the table (the costliest groups), how many groups there are, and the
    exact totals of every call the filters select, whatever the table holds."""

    table: pd.DataFrame
    groups: int
    totals: Totals

    @property
    def capped(self) -> bool:
        return self.groups > len(self.table)


def cost_view(url: str, f: Filters, group: str) -> CostView:
    """Without tags, any group but users comes from the page's day frame (a few hundred rows,
    every group); users and tag filters from one grouped query that also sums every group."""
    if not f.tags:
        window = breakdown.between(page_frame(url, f), f.start, f.end)
        if group != "user":
            table = breakdown.group_table(window, group)
            return CostView(table, len(table), breakdown.totals(window))
    grouped = _cost_by(url, f, group)
    # shares of the cost of every group, not of the (possibly capped) table's own rows
    table = breakdown.share_of(grouped.table, grouped.totals.cost_usd)
    return CostView(table, grouped.groups, grouped.totals)


@st.cache_data(ttl=TTL, show_spinner=False)
def _cost_by(url: str, f: Filters, group: str) -> queries.Grouped:
    return queries.cost_by(engine(url), f, group)


@st.cache_data(ttl=TTL, show_spinner=False)
def top_users(url: str, f: Filters, n: int = 8) -> pd.DataFrame:
    return queries.top_users(engine(url), f, n)


@st.cache_data(ttl=TTL, show_spinner=False)
def latency(url: str, f: Filters, in_range: int) -> Latency:
    return raw_calls.latency(engine(url), f, in_range)


@st.cache_data(ttl=TTL, show_spinner=False)
def drill_down(url: str, f: Filters, group: str, value: Any, page: int) -> pd.DataFrame:
    return raw_calls.drill_down(engine(url), f, group, value, page)


@st.cache_data(ttl=TTL, show_spinner=False)
def unpriced_models(url: str, f: Filters) -> pd.DataFrame:
    return queries.unpriced_models(engine(url), f)


@st.cache_data(ttl=TTL, show_spinner=False)
def cost_between(url: str, f: Filters, start: datetime, end: datetime) -> tuple[int, Any]:
    return raw_calls.cost_between(engine(url), f, start, end)


def yesterday_so_far(url: str, f: Filters, now: datetime) -> tuple[int, Any]:
    """Yesterday's calls and cost up to the time of day it is now, to the minute (cached for
    the minute), to set beside today's so far."""
    now = now.replace(second=0, microsecond=0)
    yesterday = now.date() - timedelta(days=1)
    midnight = datetime.combine(yesterday, datetime.min.time(), UTC)
    # like "today so far", this follows the calendar, not the date range (which may leave
    # yesterday out: the range of today alone, or a past week)
    return cost_between(url, f.with_dates(yesterday, yesterday), midnight, now - timedelta(days=1))


def load_demo(url: str, progress: Callable[[int, int], None]) -> None:
    """Load the app's demo data set into the store, then forget every cached result."""
    demo.load(
        engine(url),
        calls=demo.APP_CALLS,
        days=demo.APP_DAYS,
        seed=demo.DEFAULT_SEED,
        progress=progress,
    )
    cache.forget()
