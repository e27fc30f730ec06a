"""The entry script: page config, navigation over ../pages, and the store line in the sidebar."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from dashboard.db import store_label

PAGES = Path(__file__).resolve().parent.parent / "pages"

st.set_page_config(page_title="Unitwise", page_icon=":material/payments:", layout="wide")
navigation = st.navigation(
    {"Analyze": [st.Page(PAGES / "overview.py", title="Overview", icon=":material/monitoring:")]}
)
st.sidebar.caption(f"Store: {store_label()}")
navigation.run()
