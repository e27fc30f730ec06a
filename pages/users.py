"""Users & margins: what each customer costs in AI and pays, and which plans make money
(sections in dashboard/margins_view.py; plans and customers edited in accounts_view)."""

from __future__ import annotations

from datetime import UTC, datetime

import streamlit as st

from dashboard import accounts_view, margins_view, notices
from dashboard.access import editor_access, sign_in
from dashboard.db import store_url

st.title("Users & margins")
url = store_url()
notices.store_or_stop(url)
access = editor_access(url)
sign_in(access)  # for a reader who cannot edit: why, and the login or password to edit
chosen = margins_view.settings(datetime.now(UTC).date())
if chosen is None:
    st.stop()
report = margins_view.report(url, chosen)
margins_view.totals_section(report)
# only the open tab runs (Streamlit reruns the page on a switch): the editors' reads and the
# calculators' price book were a third of every render at 25,000 customers
tabs = st.tabs(list(margins_view.TABS), key=margins_view.TAB_KEY, on_change="rerun")
with tabs[0]:
    if tabs[0].open:
        margins_view.distribution_section(report)
with tabs[1]:
    if tabs[1].open:
        margins_view.below_section(url, report, chosen.below_pct)
with tabs[2]:
    if tabs[2].open:
        margins_view.detail_section(url, report)
with tabs[3]:
    if tabs[3].open:
        margins_view.plans_section(report, chosen.target_pct)
with tabs[4]:
    if tabs[4].open:
        margins_view.calculators_section(url, report, chosen)
with tabs[5]:
    if tabs[5].open:
        accounts_view.accounts_section(url, access)
