"""Messages the pages share: a store that cannot be read yet, calls dated in the future, and
unpriced models with how to price them. Worded once so every page says the same."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import PAGES
from dashboard.access import Access
from dashboard.data import StoreState, store_state
from dashboard.formats import plural
from dashboard.md_escape import md_text

ADD_PRICE = (
    "python -m tracking prices add --url URL --provider PROVIDER --model MODEL "
    "--input 2.50 --output 10.00"
)
REPRICE = "python -m tracking prices reprice --url URL --unpriced"
READ_ONLY = "Read-only: editing needs the editor role (see the top of the page)."


def not_an_editor(access: Access) -> bool:
    """True, with the reason shown, when this reader may not write. Every write function of the
    app calls it first, not only the page that draws its button: a crafted session state (a
    click or an edit set without signing in) that reaches a write writes nothing.
    tests/test_write_paths.py holds every write path to it."""
    if access.can_edit:
        return False
    st.error(access.reason or READ_ONLY)
    return True


def missing_store(state: StoreState) -> None:
    st.error(
        "The store has no tables yet (or cannot be read). Run "
        "`python -m tracking migrate --url URL` (or `make run`)."
        + (f"\n\nThe store said: {state.error}" if state.error else "")
    )


def store_or_stop(url: str) -> StoreState:
    """The store's state for a page; a store without tables gets the notice and stops the page
    there (every page needs the tables)."""
    state = store_state(url)
    if state.kind == "missing":
        missing_store(state)
        st.stop()
    return state


def future_calls(state: StoreState) -> None:
    if state.future_calls:
        st.warning(
            f"{plural(state.future_calls, 'call')} {'is' if state.future_calls == 1 else 'are'} "
            "dated more than a day ahead (the latest "
            f"{state.latest_future:%Y-%m-%d %H:%M} UTC): a wrong clock or a typo in "
            "`occurred_at`. They are left out of the default range."
        )


def unpriced_models(models: pd.DataFrame, calls: int) -> None:
    """The unpriced warning: which models, how many calls, and how to price them."""
    if not calls:
        return
    listed = ", ".join(
        f"{md_text(row.provider)}/{md_text(row.model)} ({row.unpriced:,})"
        for row in models.head(8).itertuples()
    )
    more = f" and {len(models) - 8:,} more" if len(models) > 8 else ""
    st.warning(
        f"{plural(calls, 'call')} in this range {'is' if calls == 1 else 'are'} unpriced: "
        "their models are not in the price table, "
        f"so their cost is unknown (not $0). Models: {listed}{more}.\n\n"
        "Add a price on the Pricing page and reprice those calls there, or from the command "
        f"line: `{ADD_PRICE}`, then `{REPRICE}`"
    )
    st.page_link(
        PAGES / "pricing.py", label="Price them on the Pricing page", icon=":material/sell:"
    )
