"""Budgets & what-if: budgets by scope and period (tab "Budgets"), and what-if scenarios
(tab "What-if", in dashboard/whatif_view.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import streamlit as st

from dashboard import data, notices, whatif_view
from dashboard.access import editor_access, sign_in
from dashboard.db import store_url

st.title("Budgets & what-if")
tab_budgets, tab_whatif = st.tabs(["Budgets", "What-if"])
with tab_budgets:
    st.info("Coming soon. Budgets by scope and period, with alerts, in this tab.")
with tab_whatif:
    url = store_url()
    state = data.store_state(url)
    if state.kind == "missing":
        notices.missing_store(state)
        st.stop()
    access = editor_access(url)
    sign_in(access)
    whatif_view.whatif_section(url, access, datetime.now(UTC).date())
