"""The shared sidebar filters: drawn by the entry script on the pages that use them, read by the
pages.

The widgets live in the entry script, which runs before every page. Their values are kept under
their keys in the session state, and re-set on every run so that Streamlit keeps them while a
page that does not show the filters is open.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta

import pandas as pd
import streamlit as st

from dashboard.filter_model import Filters, today
from dashboard.filter_text import parse_ids

STATE_KEY = "filters"
DEFAULT_DAYS = 30
EARLIEST = date(2000, 1, 1)  # the date box accepts dates from here to a year ahead
WIDGET_KEYS = ("f_dates", "f_providers", "f_models", "f_features", "f_users")
CHOICES = (  # (label, the frame's column, the widget's key)
    ("Provider", "provider", "f_providers"),
    ("Model", "model", "f_models"),
    ("Feature", "feature", "f_features"),
)


def default_range() -> tuple[date, date]:
    """The last 30 days, ending today: a call dated in the future never moves it."""
    end = today()
    return end - timedelta(days=DEFAULT_DAYS - 1), end


def keep_values() -> None:
    """Re-set each filter's value, so that Streamlit keeps it on pages without the sidebar."""
    for key in WIDGET_KEYS:
        if key in st.session_state:
            st.session_state[key] = st.session_state[key]


def options(frame: pd.DataFrame, chosen: dict[str, tuple[str, ...]]) -> dict[str, list[str]]:
    """The providers, models and features to offer: for each, those present in the rows that
    the other two choices select, so that every combination offered has calls."""
    offered: dict[str, list[str]] = {}
    for key in ("provider", "model", "feature"):
        rows = frame
        for other, values in chosen.items():
            if other != key and values:
                rows = rows[rows[other].isin(values)]
        offered[key] = sorted(v for v in rows[key].unique() if v and v != "(none)")
    return offered


def sidebar(frame_for: Callable[[Filters], pd.DataFrame] | None) -> Filters:
    """Draw the filters in the sidebar and remember what they select for the pages.

    ``frame_for(dates_only)`` gives the day frame the providers, models and features are
    offered from (None: a store with nothing to offer yet).
    """
    bar = st.sidebar
    bar.header("Filters")
    st.session_state.setdefault("f_dates", default_range())
    latest = today() + timedelta(days=365)
    picked = bar.date_input(
        "Dates",
        key="f_dates",
        min_value=EARLIEST,
        max_value=latest,
        help=f"Dates from {EARLIEST} to {latest}; the box refuses others.",
    )
    start, end, why = read_dates(picked)
    bar.caption(
        f"Showing {start} to {end}{why}. A date before {EARLIEST} or after {latest} is "
        "refused by the box and may stay in view: this line says what the pages show."
    )
    chosen = {name: tuple(st.session_state.get(key) or ()) for _, name, key in CHOICES}
    offered = options(frame_for(Filters(start, end)), chosen) if frame_for else {}
    picks: dict[str, tuple[str, ...]] = {}
    for label, name, key in CHOICES:
        choices = sorted({*offered.get(name, []), *chosen[name]})  # a choice never vanishes
        picks[name] = tuple(bar.multiselect(label, choices, key=key))
    typed = bar.text_input("User ids", key="f_users", placeholder="user_0001, user_0002")
    users = parse_ids(typed)
    for note in users.notes:
        bar.caption(note)
    filters = Filters(start, end, picks["provider"], picks["model"], picks["feature"], users.values)
    st.session_state[STATE_KEY] = filters
    return filters


def read_dates(picked: object) -> tuple[date, date, str]:
    """The range a date box's value selects, and why, when that is not simply what it shows."""
    if isinstance(picked, tuple | list):
        chosen = [d for d in picked if isinstance(d, date)]
        if len(chosen) == 2:
            return min(chosen), max(chosen), ""
        if len(chosen) == 1:  # the second click of a range is still to come
            return chosen[0], chosen[0], " (pick an end date for a longer range)"
    if isinstance(picked, date):
        return picked, picked, ""
    start, end = default_range()
    return start, end, f" (the last {DEFAULT_DAYS} days: no range picked)"


def current() -> Filters:
    """The filters the sidebar set on this run."""
    found = st.session_state.get(STATE_KEY)
    if isinstance(found, Filters):
        return found
    return Filters(*default_range())
