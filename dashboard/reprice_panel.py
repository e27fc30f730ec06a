"""The Pricing page's reprice: choose calls, preview their before/after totals (summed from the
calls, as ``prices reprice --dry-run`` prints them), then apply in batches with a progress bar.
The engine is ``tracking.reprice``, the same as the command's."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta
from typing import Any

import pandas as pd
import streamlit as st
from sqlalchemy import select

from dashboard import cache
from dashboard.access import Access
from dashboard.db import engine
from dashboard.formats import plural
from dashboard.md_escape import md_text
from dashboard.notices import READ_ONLY, not_an_editor
from tracking.reprice import apply_reprice, plan_reprice
from tracking.reprice_preview import Change, Preview, Selection
from tracking.schema import daily_feature_model_rollups
from tracking.sqltypes import plain_decimal

PREVIEW = "pricing.reprice_preview"
REPRICE_UNPRICED = "pricing.reprice_only_unpriced"  # ticked by "add a price" for the next run
ALL = "(all providers)"


def cost_text(change: Change, after: bool) -> str:
    """A group's cost before or after: exact dollars, or "unpriced" when none is known."""
    side = change.after if after else change.before
    if side.calls and side.unpriced == side.calls:
        return "unpriced"
    return f"${plain_decimal(side.cost)}"


def preview_table(groups: Iterable[tuple[Any, Change]], label: str) -> pd.DataFrame:
    """One row per group: calls, cost before and after (exact text), the difference in known
    cost, and unpriced calls before and after."""
    rows = [
        (
            name,
            change.before.calls,
            cost_text(change, after=False),
            cost_text(change, after=True),
            f"${plain_decimal(change.after.cost - change.before.cost)}",
            change.before.unpriced,
            change.after.unpriced,
        )
        for name, change in groups
    ]
    columns = [
        label,
        "calls",
        "cost before",
        "cost after",
        "difference",
        "unpriced before",
        "unpriced after",
    ]
    return pd.DataFrame(rows, columns=columns)


def _models(url: str) -> list[tuple[str, str]]:
    r = daily_feature_model_rollups.c
    with engine(url).connect() as conn:
        query = select(r.provider, r.model).distinct().order_by(r.provider, r.model)
        return [(p, m) for p, m in conn.execute(query)]


def reprice_section(url: str, access: Access, today: date) -> None:
    pairs = _models(url)
    providers = sorted({p for p, _ in pairs})
    unpriced_only = st.checkbox(
        "Only the calls that are unpriced (every model)", key=REPRICE_UNPRICED
    )
    left, right = st.columns(2)
    provider = left.selectbox(
        "Provider", [ALL, *providers], key="pricing.reprice_provider", disabled=unpriced_only
    )
    names = sorted({m for p, m in pairs if provider in (ALL, p)})
    models = right.multiselect(
        "Models (none: all)", names, key="pricing.reprice_models", disabled=unpriced_only
    )
    start, end = st.columns(2)
    first = start.date_input(
        "From (UTC day)", value=today - timedelta(days=30), key="pricing.reprice_from"
    )
    last = end.date_input("To (UTC day)", value=today, key="pricing.reprice_to")
    try:
        selection = Selection(
            None if provider == ALL or unpriced_only else provider,
            () if unpriced_only else tuple(models),
            first,
            last,
            unpriced_only,
        )
    except ValueError as exc:
        st.error(md_text(exc))
        return
    if st.button("Preview", key="pricing.reprice_preview_button"):
        with engine(url).connect() as conn:
            preview = plan_reprice(
                conn,
                selection.provider,
                selection.models,
                selection.start,
                selection.end,
                selection.unpriced_only,
            )
        st.session_state[PREVIEW] = preview
    preview: Preview | None = st.session_state.get(PREVIEW)
    if preview is None or preview.selection != selection:
        st.caption(
            "Preview first: it sums the selected calls before and after, from the calls themselves."
        )
        return
    show_preview(preview)
    if not preview.changed:
        return
    if not access.can_edit:
        st.caption(READ_ONLY)
        return
    if st.button(
        f"Apply: reprice {plural(preview.changed, 'call')}",
        type="primary",
        key="pricing.reprice_apply",
    ):
        apply(url, access, selection, preview.selected)


def show_preview(preview: Preview) -> None:
    what = md_text(preview.selection.describe())
    st.markdown(
        f"**{what}**: {plural(preview.selected, 'call')} selected, "
        f"{plural(preview.changed, 'call')} would change."
    )
    if not preview.selected:
        return
    st.dataframe(
        preview_table(
            [
                *((f"{p}/{m}", c) for (p, m), c in sorted(preview.by_model.items())),
                ("total", preview.total),
            ],
            "model",
        ),
        hide_index=True,
        key="pricing.reprice_by_model",
    )
    with st.expander("By day"):
        st.dataframe(
            preview_table(sorted(preview.by_day.items()), "day"),
            hide_index=True,
            key="pricing.reprice_by_day",
        )


def apply(url: str, access: Access, selection: Selection, selected: int) -> None:
    if not_an_editor(access):
        return
    bar = st.progress(0.0, text="Repricing…")

    def progress(batch: int, seen: int, changed: int) -> None:
        share = min(1.0, seen / selected) if selected else 1.0
        bar.progress(
            share, text=f"Batch {batch}: {seen:,} of {selected:,} calls read, {changed:,} repriced"
        )

    result = apply_reprice(
        engine(url),
        selection.provider,
        selection.models,
        selection.start,
        selection.end,
        selection.unpriced_only,
        progress=progress,
        who=access.who or "",
    )
    bar.progress(1.0, text="Done")
    st.session_state.pop(PREVIEW, None)
    cache.forget()
    st.success(
        f"Repriced {plural(result.preview.changed, 'call')} in "
        f"{plural(result.batches, 'batch', 'batches')}"
        f" (audit log entry {result.audit_id}); every rollup moved with them."
    )
