"""The Budgets tab: the status of every budget (with its projection), each budget's past
periods as a chart, and the editor. Widgets only: reads are ``budget_data``, the rules and
the save ``budget_edits``; every save checks the editor role again.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import pandas as pd
import streamlit as st

from dashboard import charts
from dashboard.access import Access
from dashboard.budget_data import BudgetRow, PastPeriod, budget_rows, history
from dashboard.budget_edits import LABELS, budgets_frame, plan_edits, save_plan
from dashboard.db import engine
from dashboard.formats import plural, usd
from dashboard.md_escape import md_text
from dashboard.notices import READ_ONLY, not_an_editor
from tracking.budget_periods import PERIOD_KINDS
from tracking.budget_store import Budget, BudgetError, list_budgets

SAVED = "budgets.saved"  # what the last save did, shown once after the rerun
AS_OF = "%Y-%m-%d %H:%M:%S UTC"
STATUS_COLUMNS = ["budget", "scope", "period", "spent", "limit", "used", "projected", "breach"]
STATUS_COLUMNS += ["unknown cost", "kind"]


def editor_key() -> str:
    """The editor's key; a save moves it on, so the table starts afresh from the store."""
    generation = st.session_state.get("budgets.generation", 0)
    return "budgets.editor" + (f".{generation}" if generation else "")


def unknown_cost(calls: int) -> str:
    return f"plus {plural(calls, 'call')} of unknown cost" if calls else ""


def percent_text(row: BudgetRow) -> str:
    percent = row.status.percent_used
    if percent is None:
        return "0%" if row.status.spend.amount == 0 else "over ($0 limit)"
    return f"{percent:.1f}%"


def status_frame(rows: Sequence[BudgetRow]) -> pd.DataFrame:
    """The status table, as text (exact money rounded for display only)."""
    return pd.DataFrame(
        [
            {
                "budget": r.status.budget.name,
                "scope": r.status.budget.describe_scope(),
                "period": f"{r.status.spend.period.label} ({r.status.budget.timezone})",
                "spent": usd(r.status.spend.amount),
                "limit": usd(r.status.limit),
                "used": percent_text(r),
                "projected": usd(r.projection.projected),
                "breach": "" if r.projection.breach_day is None else str(r.projection.breach_day),
                "unknown cost": unknown_cost(r.status.spend.unpriced_calls),
                "kind": "hard" if r.status.budget.hard else "soft",
            }
            for r in rows
        ],
        columns=STATUS_COLUMNS,
    )


def history_frame(past: Sequence[PastPeriod]) -> pd.DataFrame:
    """Past periods for the chart (floats: display only) and the table beside it."""
    return pd.DataFrame(
        {
            "period": [p.period.label for p in past],
            "spent": [float(p.spend.amount) for p in past],
            "limit": [float(p.limit) for p in past],
            "spent_text": [usd(p.spend.amount) for p in past],
            "limit_text": [usd(p.limit) for p in past],
            "unknown cost": [unknown_cost(p.spend.unpriced_calls) for p in past],
        }
    )


def budgets_section(url: str, access: Access) -> None:
    message = st.session_state.pop(SAVED, None)
    if message:
        st.success(message)
    now = datetime.now(UTC).replace(microsecond=0)
    with engine(url).connect() as conn:
        rows = budget_rows(conn, now)
    if rows:
        st.caption(
            f"Status as of {now.strftime(AS_OF)}. Projected: spent so far plus, for the rest of "
            "the period, the average of the same weekday over the last 28 days. Breach: the "
            "day spend is projected to pass the limit."
        )
        st.dataframe(status_frame(rows), hide_index=True, key="budgets.status")
        if any(r.status.spend.unpriced_calls for r in rows):
            st.warning(
                "Some budgets' scopes have calls without a price: their cost is unknown, not "
                "$0, and not in spent. Price them on the Pricing page."
            )
        history_section(url, [r.status.budget for r in rows], now)
    else:
        st.info("No budgets yet." + (" Add one in the table below." if access.can_edit else ""))
    editor_section(url, access)


def history_section(url: str, budgets: Sequence[Budget], now: datetime) -> None:
    st.subheader("Past periods")
    names = [b.name for b in budgets]
    chosen = st.selectbox("Budget", names, key="budgets.history_budget")
    budget = budgets[names.index(chosen)] if chosen in names else budgets[0]
    with engine(url).connect() as conn:
        past = history(conn, budget, now)
    points = history_frame(past)
    st.altair_chart(charts.budget_history(points), width="stretch")
    st.dataframe(
        points[["period", "spent_text", "limit_text", "unknown cost"]],
        hide_index=True,
        column_config={"spent_text": "Spent", "limit_text": "Limit (rollover included)"},
        key="budgets.history",
    )


def editor_section(url: str, access: Access) -> None:
    st.subheader("Edit budgets")
    with engine(url).connect() as conn:
        stored = list_budgets(conn)
    frame = budgets_frame(stored)
    config = {column: st.column_config.TextColumn(label) for column, label in LABELS.items()} | {
        "period": st.column_config.SelectboxColumn(
            LABELS["period"], options=list(PERIOD_KINDS), default="month"
        ),
        "timezone": st.column_config.TextColumn(
            LABELS["timezone"], default="UTC", help="An IANA name: UTC, Europe/Berlin"
        ),
        "limit_usd": st.column_config.TextColumn(LABELS["limit_usd"], help="Dollars, e.g. 500"),
        "thresholds": st.column_config.TextColumn(
            LABELS["thresholds"], default="50,80,100", help="Whole percents, e.g. 50,80,100"
        ),
        "hard": st.column_config.CheckboxColumn(LABELS["hard"], default=False),
        "rollover": st.column_config.CheckboxColumn(LABELS["rollover"], default=False),
    }
    if not access.can_edit:
        st.caption(READ_ONLY)
        st.dataframe(frame, hide_index=True, column_config=config, key="budgets.readonly")
        return
    st.caption(
        "Add a row for a new budget, change a cell or delete a row. A blank scope cell means "
        "any. A period starts at midnight of its first day in the budget's timezone."
    )
    key = editor_key()
    st.data_editor(frame, key=key, num_rows="dynamic", hide_index=True, column_config=config)
    if st.button("Save budgets", type="primary", key="budgets.save"):
        save(url, access, stored, st.session_state.get(key))


def save(url: str, access: Access, stored: list[Budget], state: object) -> None:
    plan = plan_edits(stored, state if isinstance(state, dict) else None)
    if plan.problems:
        st.error(
            "Nothing was saved. Fix these cells first:\n\n"
            + "\n\n".join(f"- {md_text(p)}" for p in plan.problems)
        )
        return
    if plan.empty:
        st.info("Nothing changed.")
        return
    if not_an_editor(access):
        return
    try:
        save_plan(engine(url), plan, access.who or "")
    except BudgetError as exc:
        st.error(
            f"Nothing was saved: {md_text(exc.reason)}. Reload the page to see the budgets now."
        )
        return
    done = {"added": len(plan.adds), "changed": len(plan.changes), "removed": len(plan.removes)}
    parts = [f"{what} {plural(n, 'budget')}" for what, n in done.items() if n]
    st.session_state[SAVED] = "Saved: " + ", ".join(parts) + "."
    st.session_state.pop(editor_key(), None)
    st.session_state["budgets.generation"] = st.session_state.get("budgets.generation", 0) + 1
    st.rerun()
