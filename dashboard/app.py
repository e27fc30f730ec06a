"""The entry script: page config, navigation over ../pages, the shared filters, the store line."""

from __future__ import annotations

from pathlib import Path

import streamlit as st
from sqlalchemy.exc import DBAPIError

from dashboard import breakdown, data
from dashboard.db import store_label, store_url
from dashboard.filters import frame_window, sidebar, today
from dashboard.queries import Filters, StoreSpan

PAGES = Path(__file__).resolve().parent.parent / "pages"

st.set_page_config(page_title="Unitwise", page_icon=":material/payments:", layout="wide")
navigation = st.navigation(
    {
        "Analyze": [
            st.Page(PAGES / "overview.py", title="Overview", icon=":material/monitoring:"),
            st.Page(PAGES / "costs.py", title="Costs", icon=":material/receipt_long:"),
            st.Page(PAGES / "users.py", title="Users & margins", icon=":material/group:"),
        ],
        "Operate": [
            st.Page(PAGES / "pricing.py", title="Pricing", icon=":material/sell:"),
            st.Page(PAGES / "budgets.py", title="Budgets & what-if", icon=":material/savings:"),
        ],
    }
)
url = store_url()


def options_for(dates: Filters) -> dict[str, list[str]]:
    # the same read the Overview makes when no other filter is set: one pass serves both
    return breakdown.options(data.day_frame(url, dates.with_dates(*frame_window(dates, today()))))


try:
    span = data.store_span(url)
    sidebar(span, options_for)
except DBAPIError:  # no tables yet: the Overview page says how to migrate
    sidebar(StoreSpan(None, None), lambda _: {})
st.sidebar.caption(f"Store: {store_label()}")
navigation.run()
