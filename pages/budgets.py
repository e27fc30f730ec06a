"""Budgets & what-if: a page still to come (it says what it will show)."""

from __future__ import annotations

import streamlit as st

st.title("Budgets & what-if")
st.info(
    "Coming soon. Budgets by scope and period with alerts, and what-if scenarios: switch a "
    "feature's model, change prices or plan limits, and see next month's cost and margin."
)
