"""The Pricing page's sections: rates in force, unpriced usage with "add a price", the editor,
a model's history, verification and the audit log. Widgets only: reads go through
``price_table``, edits through ``price_edits``, and every write checks the editor role first.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import streamlit as st

from dashboard import cache, charts, price_table
from dashboard.access import Access
from dashboard.csv_export import frame_csv
from dashboard.db import engine
from dashboard.formats import plural
from dashboard.md_escape import md_text
from dashboard.notices import not_an_editor

TTL = 60
MINUTE = "YYYY-MM-DD HH:mm"  # how the page's tables show a moment (UTC)
SAVED = "pricing.saved"  # what the last save did, shown once after the rerun


def minute(now: datetime) -> datetime:
    return now.replace(second=0, microsecond=0)


@st.cache_data(ttl=TTL, show_spinner=False)
def in_force(url: str, stale_after: int) -> pd.DataFrame:
    """The rates in force (cached for a minute, and forgotten at once after a save)."""
    with engine(url).connect() as conn:
        return price_table.prices_in_force(conn, datetime.now(UTC), stale_after)


@st.cache_data(ttl=TTL, show_spinner=False)
def units(url: str) -> list[str]:
    """The units a price row may name (the editor's choices)."""
    with engine(url).connect() as conn:
        return price_table.known_units(conn)


@st.cache_data(ttl=TTL, show_spinner=False)
def scheduled(url: str) -> list[str]:
    """The versions that take effect later, in words."""
    with engine(url).connect() as conn:
        found = price_table.scheduled_versions(conn, datetime.now(UTC))
    return [
        md_text(f"{v.provider}/{v.model} from {v.effective_from:%Y-%m-%d %H:%M} UTC") for v in found
    ]


@st.cache_data(ttl=TTL, show_spinner=False)
def unpriced(url: str) -> pd.DataFrame:
    with engine(url).connect() as conn:
        return price_table.unpriced_usage(conn)


@st.cache_data(ttl=TTL, show_spinner=False)
def superseded(url: str, now: datetime) -> pd.DataFrame:
    with engine(url).connect() as conn:
        since = price_table.recent_edit_start(conn, now)
        if since is None:
            return pd.DataFrame(columns=["provider", "model", "calls", "first"])
        return price_table.superseded_calls(conn, since)


def search_rows(frame: pd.DataFrame, text: str) -> pd.DataFrame:
    """The rows whose provider or model contains every word of ``text`` (case-insensitive)."""
    words = text.lower().split()
    if not words:
        return frame
    names = (frame["provider"] + "/" + frame["model"]).str.lower()
    keep = pd.Series(True, index=frame.index)
    for word in words:
        keep &= names.str.contains(word, regex=False)
    return frame[keep]


def prices_section(prices: pd.DataFrame, stale_after: int, access: Access, url: str) -> None:
    if prices.empty:
        st.warning(
            "No prices here: every call is unpriced. Load the reference catalogue from the "
            "Catalogue tab (or `python -m tracking prices refresh --url URL`), or add a price "
            "in the Edit tab."
        )
    if later := scheduled(url):
        st.info(
            "Scheduled (saved to take effect later; see History): "
            + ", ".join(later[:10])
            + (f" and {len(later) - 10:,} more" if len(later) > 10 else "")
        )
    stale = prices.drop_duplicates(["provider", "model"])
    stale = stale[stale["stale"].astype(bool)]
    st.caption(
        f"{plural(prices[['provider', 'model']].drop_duplicates().shape[0], 'model')} priced, "
        f"{plural(len(prices), 'rate')} in force. A price not verified for {stale_after} days is "
        f"flagged stale ({price_table.STALE_DAYS_SETTING})."
    )
    if len(stale):
        st.warning(
            f"{plural(len(stale), 'model')} not verified for over {stale_after} days: check "
            "them against the provider's price list and mark them verified."
        )
    st.dataframe(
        prices.drop(columns=["version_id"]),
        hide_index=True,
        column_config={
            "tier_above": st.column_config.NumberColumn("Above input tokens", format="%d"),
            "rate": st.column_config.TextColumn("Rate ($)"),
            "effective_from": st.column_config.DatetimeColumn("In force from", format=MINUTE),
            "verified": st.column_config.DatetimeColumn("Verified", format="YYYY-MM-DD"),
            "stale": st.column_config.CheckboxColumn("Stale"),
            "set_by": "Set by",
        },
        key="pricing.table",
    )
    models = sorted({f"{p}/{m}" for p, m in zip(prices["provider"], prices["model"], strict=True)})
    stale_names = [f"{p}/{m}" for p, m in zip(stale["provider"], stale["model"], strict=True)]
    with st.form("pricing.verify"):
        chosen = st.multiselect(
            "Mark verified (checked against the provider's price list)",
            models,
            default=[m for m in stale_names if m in models][:20],
        )
        note = st.text_input("Note (optional)", key="pricing.verify_note")
        sent = st.form_submit_button("Mark verified", disabled=not access.can_edit)
    if sent and chosen and verify(url, access, chosen, note or None):
        st.rerun()


def verify(url: str, access: Access, chosen: list[str], note: str | None) -> bool:
    """Mark "provider/model" names verified, as ``access.who``; refused (False, with the
    reason shown) without the editor role, whatever the widgets' state says."""
    if not_an_editor(access):
        return False
    pairs = [tuple(name.split("/", 1)) for name in chosen]
    with engine(url).begin() as conn:
        count = price_table.mark_verified(conn, pairs, access.who or "", datetime.now(UTC), note)
    cache.forget()
    st.session_state[SAVED] = f"Marked {plural(count, 'model')} verified."
    return True


def history_section(url: str, prices: pd.DataFrame, now: datetime) -> None:
    names = sorted({f"{p}/{m}" for p, m in zip(prices["provider"], prices["model"], strict=True)})
    if not names:
        st.info("No priced models yet.")
        return
    chosen = st.selectbox("Model", names, key="pricing.history_model")
    provider, model = chosen.split("/", 1)
    with engine(url).connect() as conn:
        entries = price_table.model_history(conn, provider, model)
        points = price_table.history_points(conn, provider, model, now)
    st.altair_chart(charts.price_steps(points), width="stretch")
    table = pd.DataFrame(
        [
            (
                e.version.id,
                e.version.effective_from,
                e.version.source,
                e.version.created_by or e.version.source,
                e.changed,
                "; ".join(f"{k} {v}" for k, v in e.rates.items()),
                e.version.note or "",
            )
            for e in reversed(entries)
        ],
        columns=["version", "in force from", "source", "set by", "what changed", "rates", "note"],
    )
    st.dataframe(
        table,
        hide_index=True,
        column_config={"in force from": st.column_config.DatetimeColumn(format=MINUTE)},
        key="pricing.history_table",
    )


def audit_section(url: str) -> None:
    with engine(url).connect() as conn:
        actions = price_table.audit_actions(conn)
    left, middle, right = st.columns(3)
    chosen = left.multiselect("Actions", actions, key="pricing.audit_actions")
    who = middle.text_input("Who", key="pricing.audit_who")
    text = right.text_input("Model or note contains", key="pricing.audit_text")
    with engine(url).connect() as conn:
        rows = price_table.audit_entries(conn, chosen, who, text)
    st.caption(f"{plural(len(rows), 'entry', 'entries')}, newest first (at most 1,000).")
    st.dataframe(
        rows,
        hide_index=True,
        column_config={
            "at": st.column_config.DatetimeColumn("At (UTC)", format="YYYY-MM-DD HH:mm:ss")
        },
        key="pricing.audit",
    )
    st.download_button(
        "Download CSV",
        lambda: frame_csv(rows),
        "audit_log.csv",
        "text/csv",
        key="pricing.audit_csv",
    )


def superseded_note(url: str, now: datetime) -> None:
    found = superseded(url, minute(now))
    if found.empty:
        return
    st.info(
        f"{plural(int(found['calls'].sum()), 'call')} ("
        + ", ".join(
            md_text(f"{p}/{m}") for p, m in zip(found["provider"], found["model"], strict=True)
        )
        + ") were priced with a version an edit has since replaced for their time (a tracker "
        "prices with what it saw up to a minute before). Reprice those models from "
        f"{found['first'].min():%Y-%m-%d} to put them right."
    )
