"""Pricing: a page still to come (it says what it will show)."""

from __future__ import annotations

import streamlit as st

st.title("Pricing")
st.info(
    "Coming soon. The price table: every model's rates and their history, edits that make new"
    " versions (with an audit line), and the unpriced models to fill in."
)
