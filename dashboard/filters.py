"""The shared sidebar filters: drawn by the entry script on every page, read by the pages.

The widgets live in the entry script, which runs before every page, so their values (kept by
Streamlit under their keys) carry over when the user switches pages.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import streamlit as st

from dashboard.queries import Filters, StoreSummary

STATE_KEY = "filters"
DEFAULT_DAYS = 30


def today() -> date:
    return datetime.now(UTC).date()


def default_range(summary: StoreSummary) -> tuple[date, date]:
    """The last 30 days of data (ending today when the store is current)."""
    end = max(summary.last_day or today(), today())
    start = end - timedelta(days=DEFAULT_DAYS - 1)
    return start, end


def split_ids(text: str) -> tuple[str, ...]:
    """'u_1, u_2' -> ('u_1', 'u_2'): user ids typed by hand (there can be far too many to list)."""
    return tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))


def sidebar(summary: StoreSummary, options: dict[str, list[str]]) -> Filters:
    """Draw the filters in the sidebar and remember what they select for the pages."""
    bar = st.sidebar
    bar.header("Filters")
    picked = bar.date_input("Dates", value=default_range(summary), key="f_dates")
    start, end = _dates(picked, summary)
    providers = bar.multiselect("Provider", options.get("provider", []), key="f_providers")
    models = bar.multiselect("Model", options.get("model", []), key="f_models")
    features = bar.multiselect("Feature", options.get("feature", []), key="f_features")
    users = bar.text_input("User ids", key="f_users", placeholder="user_0001, user_0002")
    filters = Filters(
        start=start,
        end=end,
        providers=tuple(providers),
        models=tuple(models),
        features=tuple(features),
        users=split_ids(users),
    )
    st.session_state[STATE_KEY] = filters
    return filters


def _dates(picked: object, summary: StoreSummary) -> tuple[date, date]:
    if isinstance(picked, tuple | list):
        chosen = [d for d in picked if isinstance(d, date)]
        if len(chosen) == 2:
            return min(chosen), max(chosen)
        if len(chosen) == 1:  # the second click of a range is still to come
            return chosen[0], chosen[0]
    if isinstance(picked, date):
        return picked, picked
    return default_range(summary)


def current() -> Filters:
    """The filters the sidebar set on this run."""
    found = st.session_state.get(STATE_KEY)
    if isinstance(found, Filters):
        return found
    start, end = today() - timedelta(days=DEFAULT_DAYS - 1), today()
    return Filters(start, end)


def parse_tags(text: str) -> tuple[tuple[str, str], ...]:
    """'plan=pro, team=growth' -> (('plan', 'pro'), ('team', 'growth')); malformed parts ignored."""
    found: list[tuple[str, str]] = []
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if sep and key.strip() and value.strip():
            found.append((key.strip(), value.strip()))
    return tuple(found)
