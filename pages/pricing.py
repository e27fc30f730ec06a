"""Pricing: the rates in force, unpriced usage to fill in, edits as new versions, a model's
history, the catalogue's differences, reprice and the audit log (sections in dashboard/)."""

from __future__ import annotations

from datetime import UTC, datetime

import streamlit as st

from dashboard import catalogue_panel, notices, price_editor, pricing_view, reprice_panel
from dashboard.access import editor_access, sign_in
from dashboard.db import store_url
from dashboard.price_table import stale_days

st.title("Pricing")
url = store_url()
notices.store_or_stop(url)
access = editor_access(url)
now = datetime.now(UTC)
try:
    stale_after = stale_days()
except ValueError as exc:
    st.error(str(exc))
    st.stop()
price_editor.show_saved()
prices = pricing_view.in_force(url, stale_after)
units = pricing_view.units(url)
pricing_view.superseded_note(url, now)
sign_in(access)  # for a reader who cannot edit: why, and the login or password to edit

unpriced = pricing_view.unpriced(url)
search = price_editor.search_box()
shown = pricing_view.search_rows(prices, search)
tabs = st.tabs(
    [
        f"Unpriced ({len(unpriced)})" if len(unpriced) else "Unpriced",
        "Prices in force",
        "Edit",
        "History",
        "Catalogue",
        "Reprice",
        "Audit log",
    ]
)
with tabs[0]:
    price_editor.unpriced_section(url, access, units)
with tabs[1]:
    pricing_view.prices_section(shown, stale_after, access, url)
with tabs[2]:
    price_editor.editor_section(url, search, stale_after, access, units)
with tabs[3]:
    pricing_view.history_section(url, shown if len(shown) else prices, now)
with tabs[4]:
    catalogue_panel.catalogue_section(url, access)
with tabs[5]:
    reprice_panel.reprice_section(url, access, now.date())
with tabs[6]:
    pricing_view.audit_section(url)
