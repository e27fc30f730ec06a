"""Budgets & what-if: every budget's status and projection, its past periods and the editor
(dashboard/budgets_view.py), the alerts due (dashboard/alerts_view.py), and what-if scenarios
(dashboard/whatif_view.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import streamlit as st

from dashboard import alerts_view, budgets_view, notices, whatif_view
from dashboard.access import editor_access, sign_in
from dashboard.db import store_url

st.title("Budgets & what-if")
url = store_url()
notices.store_or_stop(url)
access = editor_access(url)
sign_in(access)  # for a reader who cannot edit: why, and the login or password to edit
tab_budgets, tab_alerts, tab_whatif = st.tabs(["Budgets", "Alerts", "What-if"])
with tab_budgets:
    budgets_view.budgets_section(url, access)
with tab_alerts:  # what `python -m tracking alerts check` sends, and where it went
    alerts_view.show_alerts()
with tab_whatif:
    whatif_view.whatif_section(url, access, datetime.now(UTC).date())
