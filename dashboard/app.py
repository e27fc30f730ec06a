"""The entry script: page config, navigation over ../pages, the shared filters, the store line."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import streamlit as st
from sqlalchemy.exc import DBAPIError

from dashboard import data
from dashboard.db import store_label, store_url
from dashboard.filters import sidebar
from dashboard.queries import StoreSummary

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
try:
    summary = data.store_summary(url)
    options = data.filter_options(url)
except DBAPIError:  # no tables yet: the Overview page says how to migrate
    summary, options = StoreSummary(0, Decimal(0), 0, None, None, 0), {}
sidebar(summary, options)
st.sidebar.caption(f"Store: {store_label()}")
navigation.run()
