"""Overview: what is in the store (the full page comes with the dashboard issue)."""

from __future__ import annotations

import streamlit as st

from dashboard.db import connection
from dashboard.queries import store_summary

st.title("Overview")
summary = store_summary(connection().engine)
if summary.calls == 0:
    st.info(
        "No calls logged yet. Add `tracking` to a service, or load demo data with "
        "`python -m dashboard.demo`."
    )
else:
    cols = st.columns(4)
    cols[0].metric("Calls logged", f"{summary.calls:,}")
    cols[1].metric("Total cost", f"${summary.cost_usd:,.2f}")
    cols[2].metric("Unpriced calls", f"{summary.unpriced_calls:,}")
    cols[3].metric("Price versions", f"{summary.price_versions:,}")
    st.caption(f"From {summary.first_day} to {summary.last_day}.")
    if summary.unpriced_calls:
        st.warning(
            f"{summary.unpriced_calls:,} calls have no price: their models are not in the "
            "price table."
        )
