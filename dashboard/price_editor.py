"""The Pricing page's editing: the search that the editor follows, the editor itself (new
versions from its rows, checked cell by cell, with the optimistic check against another
editor's save) and "add a price" for a model with unpriced calls. Widgets only: the rules are
``price_edits``; every save checks the editor role again.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import pandas as pd
import streamlit as st

from dashboard import cache, price_table
from dashboard.access import Access
from dashboard.db import engine
from dashboard.formats import plural
from dashboard.md_escape import md_text
from dashboard.notices import READ_ONLY, not_an_editor
from dashboard.price_edits import (
    EDITOR_COLUMNS,
    LABELS,
    EditPlan,
    SaveResult,
    new_model_change,
    newest_version,
    parse_rate_text,
    plan_edits,
    save_plan,
    unstorable_cells,
)
from dashboard.price_table import VARIANTS
from dashboard.pricing_view import SAVED, search_rows, unpriced
from dashboard.reprice_panel import REPRICE_UNPRICED
from tracking.price_store import RateRow

EDITOR = "pricing.editor"  # the data editor's key (its edits live in session state)
SEARCH = "pricing.search"
BASE = "pricing.base"  # the models' newest version ids when this edit began
START = "pricing.start"  # (search, rows) this edit began from
CONFLICTS = "pricing.conflicts"  # the refused save (its conflicts), until resolved
NOTE = "pricing.note"  # why: the audit note of the next save


def unpriced_section(url: str, access: Access, units: list[str]) -> None:
    usage = unpriced(url)
    if usage.empty:
        st.success("Every stored call has a price (or a provider-reported cost).")
        return
    st.warning(
        f"{plural(int(usage['calls'].sum()), 'call')} of {plural(len(usage), 'model')} have no "
        "price: their cost is unknown, not $0. Add a price for each model (or a pattern for "
        "a family, such as ft:gpt-4o-mini:*), then reprice those calls."
    )
    st.dataframe(
        usage,
        hide_index=True,
        column_config={
            "first_day": "First call",
            "last_day": "Last call",
            "calls": "Unpriced calls",
        },
        key="pricing.unpriced",
    )
    if not access.can_edit:
        return
    names = [f"{p}/{m}" for p, m in zip(usage["provider"], usage["model"], strict=True)]
    st.markdown("**Add a price** (dollars; tokens per 1M)")
    # outside the form, so that the date below follows the model chosen
    chosen = st.selectbox("Model with unpriced calls", names, key="pricing.add_model")
    first = usage.iloc[names.index(chosen)]["first_day"] if chosen else None
    with st.form("pricing.add"):
        pattern = st.text_input(
            "Price it as: the model's name (leave empty), a pattern such as ft:gpt-4o-mini:*, "
            "or a model priced already (then leave the rates empty)",
            key="pricing.add_pattern",
        )
        cols = st.columns(4)
        token_rates = {
            unit: cols[i].text_input(f"{unit.replace('_', ' ')} $/1M", key=f"pricing.add_{unit}")
            for i, unit in enumerate(
                ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
            )
        }
        other_unit = st.selectbox(
            "Other unit (optional)",
            ["", *[u for u in units if not u.endswith("_tokens")]],
            key="pricing.add_unit",
        )
        other_rate = st.text_input(
            "Its rate ($ per the unit shown in the table)", key="pricing.add_other"
        )
        start = st.date_input(
            "In force from",
            value=first,
            key=f"pricing.add_from:{chosen}",
            help="Default: the first unpriced call's day, so that all of them can be repriced.",
        )
        sent = st.form_submit_button("Add price")
    if sent and chosen:
        _add_price(url, access, chosen, pattern, token_rates, other_unit, other_rate, start)


def _add_price(
    url: str,
    access: Access,
    chosen: str,
    pattern: str,
    token_rates: dict[str, str],
    other_unit: str,
    other_rate: str,
    start: date | None,
) -> None:
    provider, model = chosen.split("/", 1)
    rates: list[RateRow] = []
    errors: list[str] = []
    entered = {u: t for u, t in token_rates.items() if t.strip()}
    if other_unit:
        entered[other_unit] = other_rate
    with engine(url).connect() as conn:
        per_of_unit = price_table.usual_pers(conn)
        base = newest_version(conn)
    for unit, text in entered.items():
        try:
            per, _ = price_table.quoted_per(unit, per_of_unit.get(unit))
            rates.append(RateRow(unit, parse_rate_text(text), per))
        except ValueError as exc:
            errors.append(f"{unit}: {exc}")
    if errors:
        st.error("Nothing was saved:\n\n" + "\n\n".join(f"- {md_text(e)}" for e in errors))
        return
    when = datetime.combine(start or utc_today(), time(), UTC)
    with engine(url).connect() as conn:
        plan = new_model_change(conn, provider, model, pattern, rates, when)
    # then the Reprice tab offers those calls (set before the save reruns the page)
    st.session_state[REPRICE_UNPRICED] = True
    _save(url, access, plan, base, note=f"priced the unpriced calls of {chosen}")


def utc_today() -> date:
    return datetime.now(UTC).date()


def _save(
    url: str, access: Access, plan: EditPlan, base: int, note: str | None
) -> SaveResult | None:
    if plan.errors:
        st.error(
            "Nothing was saved. Fix these cells first:\n\n"
            + "\n\n".join(f"- {md_text(e)}" for e in plan.errors)
        )
        return None
    if not plan.changes:
        st.info("Nothing changed.")
        return None
    if not_an_editor(access):
        return None
    result = save_plan(engine(url), plan, base, access.who or "", note)
    if result.conflicts:
        st.session_state[CONFLICTS] = result
        return result
    cache.forget()
    discard_edits()
    lines = [
        f"{c.provider}/{c.model}: version {v} ({c.action}) in force from "
        f"{c.effective_from:%Y-%m-%d %H:%M} UTC"
        if c.writes_version
        else f"{c.provider}/{c.pattern}: priced as {c.model}"
        for c, v in result.saved
    ]
    st.session_state[SAVED] = (
        "Saved "
        + plural(len(lines), "change")
        + ":\n\n"
        + "\n\n".join(f"- {md_text(x)}" for x in lines)
        + "\n\nRunning trackers use it within a minute. To change the calls already stored, "
        "reprice them (Reprice tab)."
    )
    st.rerun()
    return result


def pending_edits() -> bool:
    """Whether the editor holds edits not saved yet (its state from the last run)."""
    state = st.session_state.get(EDITOR) or {}
    return any(state.get(part) for part in ("edited_rows", "added_rows", "deleted_rows"))


def discard_edits() -> None:
    for key in (EDITOR, BASE, START, CONFLICTS, NOTE):
        st.session_state.pop(key, None)


def start_edit(url: str, search: str, stale_after: int) -> pd.DataFrame:
    """The rows this edit begins from, read afresh (not from the page's cache), after the
    newest version id (the base of the optimistic check: any version saved later, by this app
    or another, is a conflict); kept until a save or a discard, so that another editor's save
    does not change the rows under this one's edits."""
    begun = st.session_state.get(START)
    if begun is None or (begun[0] != search and not pending_edits()):
        with engine(url).connect() as conn:
            st.session_state[BASE] = newest_version(conn)
            prices = price_table.prices_in_force(conn, datetime.now(UTC), stale_after)
        shown = search_rows(prices, search)
        frame = shown.assign(new_from="")[[*EDITOR_COLUMNS, "per"]].reset_index(drop=True)
        begun = st.session_state[START] = (search, frame)
    return begun[1]


def search_box() -> str:
    """The page's search; held while the editor has unsaved edits, since the editor's rows
    follow it and a new search would drop them."""
    held = pending_edits()
    text = st.text_input(
        "Search provider and model",
        key=SEARCH,
        placeholder="e.g. openai gpt-4o",
        disabled=held,
    )
    if held:
        left, right = st.columns([3, 1])
        left.caption("The editor has unsaved edits: save or discard them to search again.")
        if right.button("Discard my edits", key="pricing.discard"):
            discard_edits()
            st.rerun()
    return text


def editor_section(
    url: str, search: str, stale_after: int, access: Access, units: list[str]
) -> None:
    if not access.can_edit:
        st.caption(READ_ONLY)
        return
    frame = start_edit(url, search, stale_after)
    refused: SaveResult | None = st.session_state.get(CONFLICTS)
    if refused is not None:
        conflicts = refused.conflicts
        st.error(
            "Not saved: another editor saved "
            + ", ".join(md_text(f"{c.provider}/{c.model}") for c in conflicts)
            + " after you began. Your edits are still in the table below; the prices now in "
            "force are:"
        )
        for c in conflicts:
            st.markdown(
                f"**{md_text(f'{c.provider}/{c.model}')}**: "
                + (", ".join(f"{k} {v}" for k, v in c.current.items()) or "no price")
            )
        if st.button("Keep my edits and save them over these", key="pricing.rebase"):
            # over what was shown, no further: a version saved since is a conflict again
            st.session_state[BASE] = refused.seen
            st.session_state.pop(CONFLICTS)
            st.rerun()
    st.caption(
        "Change a rate, add a row (a new model, unit or tier) or delete one (the rate is retired; "
        "deleting every row of a model retires the model). Saving makes a new version of each "
        "changed model; nothing is overwritten. Rates are dollars per the unit shown."
    )
    edited = st.data_editor(
        frame,
        key=EDITOR,
        num_rows="dynamic",
        hide_index=True,
        disabled=["per"],
        column_config={
            "provider": st.column_config.TextColumn(LABELS["provider"]),
            "model": st.column_config.TextColumn(LABELS["model"]),
            "unit": st.column_config.SelectboxColumn(LABELS["unit"], options=units),
            "variant": st.column_config.SelectboxColumn(
                LABELS["variant"], options=list(VARIANTS), default="standard"
            ),
            "tier_above": st.column_config.NumberColumn(
                LABELS["tier_above"], min_value=0, step=1, default=0
            ),
            "rate": st.column_config.TextColumn(
                LABELS["rate"], help="Dollars per the unit in the next column (tokens: per 1M)"
            ),
            "per": st.column_config.TextColumn("Per"),
            "new_from": st.column_config.TextColumn(
                LABELS["new_from"],
                help="YYYY-MM-DD or YYYY-MM-DD HH:MM (UTC); empty: the date below",
            ),
        },
    )
    left, right = st.columns(2)
    when = left.radio("Effective", ["now", "from a date"], horizontal=True, key="pricing.when")
    day = right.date_input(
        "Date (UTC midnight)", value=utc_today(), key="pricing.day", disabled=when == "now"
    )
    note = st.text_input("Why (kept in the audit log)", key=NOTE)
    if st.button("Save as new versions", type="primary", key="pricing.save"):
        default_from = datetime.now(UTC) if when == "now" else datetime.combine(day, time(), UTC)
        # the editor leaves a row holding a lone surrogate out of ``edited``, so the frame's
        # rows are numbered past it: such cells are named alone, from the editor's own state
        unstorable = unstorable_cells(st.session_state.get(EDITOR) or {}, len(frame))
        if unstorable:
            plan = EditPlan(errors=unstorable)
        else:
            with engine(url).connect() as conn:
                plan = plan_edits(conn, frame, edited, units, default_from)
        result = _save(url, access, plan, st.session_state[BASE], note or None)
        if result is not None and result.conflicts:
            st.rerun()


def show_saved() -> None:
    message = st.session_state.pop(SAVED, None)
    if message:
        st.success(message)
