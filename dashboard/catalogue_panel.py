"""The Pricing page's catalogue: what the installed genai-prices data has that the store does
not, or has otherwise, and "accept selected" (the rules of ``python -m tracking prices
refresh``, from ``tracking.catalogue_store``)."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import streamlit as st

from dashboard import cache
from dashboard.access import Access
from dashboard.db import engine
from dashboard.formats import plural
from dashboard.notices import READ_ONLY, not_an_editor
from dashboard.price_edits import newest_version, saved_since
from tracking.catalogue_store import CatalogueChange, accept_catalogue, catalogue_diff, rates_text
from tracking.price_store import lock_prices

TTL = 300  # the catalogue is installed data: it changes when the package does
SHOWN = "pricing.catalogue_base"
KINDS = {"added": "missing from the store", "changed": "rates differ (new version from now)"}


@st.cache_data(ttl=TTL, show_spinner="Comparing with the catalogue…")
def _diff(url: str, now: datetime) -> tuple[int, list[CatalogueChange]]:
    """The differences, and the newest version id before they were read: a model saved after
    it (by an editor, here or elsewhere) is not overwritten by an accept made from this list."""
    with engine(url).connect() as conn:
        return newest_version(conn), catalogue_diff(conn, now)


def diff_frame(changes: list[CatalogueChange]) -> pd.DataFrame:
    """One row per acceptable change, unticked: what the store has and what the catalogue has."""
    rows = [
        (
            False,
            KINDS[c.kind],
            c.provider,
            c.model,
            c.effective_from,
            "" if c.store_rates is None else rates_text(c.store_rates),
            rates_text(c.catalogue_rates),
            "; ".join(c.differences),
            c.key,
        )
        for c in changes
        if c.kind in KINDS
    ]
    columns = [
        "accept",
        "what",
        "provider",
        "model",
        "from",
        "store",
        "catalogue",
        "differences",
        "key",
    ]
    return pd.DataFrame(rows, columns=columns)


def catalogue_section(url: str, access: Access) -> None:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    shown = st.session_state.get(SHOWN)  # the base of the list as this reader last saw it
    base, changes = _diff(url, now)
    st.session_state[SHOWN] = base
    frame = diff_frame(changes)
    if frame.empty:
        st.success("The store has every rate of the installed catalogue.")
        return
    st.caption(
        f"{plural(len(frame), 'difference')} from the installed genai-prices catalogue. Accepting "
        "adds versions (a rate in force that differs gets a new version from now); nothing is "
        "overwritten, and calls stored before keep their cost until repriced."
    )
    if not access.can_edit:
        st.dataframe(
            frame.drop(columns=["accept", "key"]), hide_index=True, key="pricing.catalogue_view"
        )
        st.caption(READ_ONLY)
        return
    picked = st.data_editor(
        frame,
        key="pricing.catalogue",
        hide_index=True,
        disabled=[c for c in frame.columns if c != "accept"],
        column_order=[c for c in frame.columns if c != "key"],
        column_config={"accept": st.column_config.CheckboxColumn("Accept")},
    )
    ticked = picked[picked["accept"].astype(bool)]
    keys = list(ticked["key"])
    if st.button(
        f"Accept selected ({len(keys)})", disabled=not keys, key="pricing.catalogue_accept"
    ):
        accept(url, access, ticked, base, shown)


def accept(url: str, access: Access, ticked: pd.DataFrame, base: int, shown: int | None) -> None:
    """Accept the ``ticked`` rows of the list (keys, providers, models) drawn at version
    ``base`` (``shown``: the one this reader saw before), skipping a model saved since."""
    if not_an_editor(access):
        return
    keys = list(ticked["key"])
    with engine(url).begin() as conn:
        lock_prices(conn)
        # a model saved since the list the reader ticked was drawn is not overwritten
        edited = saved_since(conn, base if shown is None else min(shown, base))
        mine = zip(ticked["key"], ticked["provider"], ticked["model"], strict=True)
        stale = {k for k, p, m in mine if (p, m) in edited}
        fresh = [k for k in keys if k not in stale]
        report = accept_catalogue(conn, fresh, access.who or "")
        report.skipped += [(k, "saved by an editor since this list was made") for k in stale]
    cache.forget()
    st.session_state.pop("pricing.catalogue", None)
    written = len(report.added) + len(report.changed)
    message = f"Accepted {plural(written, 'catalogue version')}."
    if report.skipped:
        message += " Skipped: " + "; ".join(f"{k} ({why})" for k, why in report.skipped)
    st.session_state["pricing.saved"] = message
    st.rerun()
