"""The shared sidebar filters: drawn by the entry script on every page, read by the pages.

The widgets live in the entry script, which runs before every page, so their values (kept by
Streamlit under their keys) carry over when the user switches pages.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import streamlit as st

from dashboard.queries import Filters, StoreSpan

STATE_KEY = "filters"
DEFAULT_DAYS = 30
PROJECTION_DAYS = 15  # complete days before today the month-end projection looks at


def today() -> date:
    return datetime.now(UTC).date()


def default_range(span: StoreSpan) -> tuple[date, date]:
    """The last 30 days, ending today (or at the last day with calls, if that is later)."""
    end = max(span.last_day or today(), today())
    return end - timedelta(days=DEFAULT_DAYS - 1), end


def frame_window(f: Filters, now: date) -> tuple[date, date]:
    """The days one ``day_frame`` read covers for a page: the date range, plus this month and
    the days the projection needs, so the Overview's calendar figures come from the same read."""
    start = min(f.start, now.replace(day=1), now - timedelta(days=PROJECTION_DAYS))
    return start, max(f.end, now)


def split_ids(text: str) -> tuple[str, ...]:
    """'u_1, u_2' -> ('u_1', 'u_2'): user ids typed by hand (there can be far too many to list)."""
    return tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))


def sidebar(span: StoreSpan, options_for: Callable[[Filters], dict[str, list[str]]]) -> Filters:
    """Draw the filters in the sidebar and remember what they select for the pages.

    ``options_for(dates_only)`` gives the providers, models and features to choose from.
    """
    bar = st.sidebar
    bar.header("Filters")
    picked = bar.date_input("Dates", value=default_range(span), key="f_dates")
    start, end = _dates(picked, span)
    options = options_for(Filters(start, end))

    def choose(label: str, name: str, key: str) -> tuple[str, ...]:
        chosen = st.session_state.get(key) or []
        choices = sorted({*options.get(name, []), *chosen})  # a choice never vanishes under it
        return tuple(bar.multiselect(label, choices, key=key))

    providers = choose("Provider", "provider", "f_providers")
    models = choose("Model", "model", "f_models")
    features = choose("Feature", "feature", "f_features")
    users = bar.text_input("User ids", key="f_users", placeholder="user_0001, user_0002")
    filters = Filters(start, end, providers, models, features, split_ids(users))
    st.session_state[STATE_KEY] = filters
    return filters


def _dates(picked: object, span: StoreSpan) -> tuple[date, date]:
    if isinstance(picked, tuple | list):
        chosen = [d for d in picked if isinstance(d, date)]
        if len(chosen) == 2:
            return min(chosen), max(chosen)
        if len(chosen) == 1:  # the second click of a range is still to come
            return chosen[0], chosen[0]
    if isinstance(picked, date):
        return picked, picked
    return default_range(span)


def current() -> Filters:
    """The filters the sidebar set on this run."""
    found = st.session_state.get(STATE_KEY)
    if isinstance(found, Filters):
        return found
    return Filters(today() - timedelta(days=DEFAULT_DAYS - 1), today())


def parse_tags(text: str) -> tuple[tuple[str, str], ...]:
    """'plan=pro, team=growth' -> (('plan', 'pro'), ('team', 'growth')); malformed parts ignored."""
    found: list[tuple[str, str]] = []
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if sep and key.strip() and value.strip():
            found.append((key.strip(), value.strip()))
    return tuple(found)
