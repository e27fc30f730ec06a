"""The entry script: page config, navigation over ../pages, the shared filters, the store line."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from dashboard import PAGES, data
from dashboard.db import store_label, store_url
from dashboard.filters import keep_values, sidebar

ICON = Path(__file__).resolve().parent / "favicon.png"  # served by the app: no network needed
FILTERED = ("Overview", "Costs")  # the pages that read the shared filters

st.set_page_config(page_title="Unitwise", page_icon=str(ICON), layout="wide")
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
keep_values()
if navigation.title in FILTERED:
    state = data.store_state(url)
    sidebar((lambda f: data.page_frame(url, f)) if state.kind == "ready" else None)
st.sidebar.caption(f"Store: {store_label()}")
navigation.run()
