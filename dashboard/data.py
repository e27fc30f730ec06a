"""The queries as the pages call them: cached per store URL and arguments for ``TTL`` seconds.

Kept apart from ``queries`` so that those stay plain functions (benchmarks and tests call them
without Streamlit), and pages never hold an engine.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from dashboard import queries
from dashboard.db import engine
from dashboard.queries import Filters, Latency, StoreSpan

TTL = 60  # seconds: new calls show up within a minute


@st.cache_data(ttl=TTL, show_spinner=False)
def store_span(url: str) -> StoreSpan:
    return queries.store_span(engine(url))


@st.cache_data(ttl=TTL, show_spinner=False)
def day_frame(url: str, f: Filters) -> pd.DataFrame:
    return queries.day_frame(engine(url), f)


@st.cache_data(ttl=TTL, show_spinner=False)
def cost_by(url: str, f: Filters, group: str) -> pd.DataFrame:
    return queries.cost_by(engine(url), f, group)


@st.cache_data(ttl=TTL, show_spinner=False)
def top_users(url: str, f: Filters, n: int = 8) -> pd.DataFrame:
    return queries.top_users(engine(url), f, n)


@st.cache_data(ttl=TTL, show_spinner=False)
def latency(url: str, f: Filters, in_range: int) -> Latency:
    return queries.latency(engine(url), f, in_range)


@st.cache_data(ttl=TTL, show_spinner=False)
def drill_down(url: str, f: Filters, group: str, value: Any, page: int) -> pd.DataFrame:
    return queries.drill_down(engine(url), f, group, value, page)


def clear() -> None:
    """Forget every cached result (after loading demo data)."""
    st.cache_data.clear()
