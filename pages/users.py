"""Users & margins: a page still to come (it says what it will show)."""

from __future__ import annotations

import streamlit as st

st.title("Users & margins")
st.info(
    "Coming soon. Revenue per user from plans and imports beside what each user costs: margin"
    " per user and per plan, the users who cost more than they pay, and break-even usage."
)
