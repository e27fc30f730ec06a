"""The What-if tab of Budgets & what-if: the levers (tables of price changes, feature moves and
draft prices among them), the projection with its band, the plans' margins, the budgets it
breaks, the tornado, and saved scenarios loaded back or compared side by side.
Widgets only: the figures are ``economics.whatif``'s, the tables read by ``whatif_tables``,
the reads ``whatif_data``'s, the writes ``scenarios``' (editor role checked again at each
write)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from fractions import Fraction
from typing import Any

import pandas as pd
import streamlit as st

from dashboard import charts, scenarios, whatif_data
from dashboard.access import Access
from dashboard.db import engine
from dashboard.economics.whatif import (
    RATE_UNITS,
    Baseline,
    LeverError,
    Levers,
    Projection,
    rates_from_book,
    sensitivity,
    simulate,
)
from dashboard.editor_state import unstorable_cells
from dashboard.formats import usd
from dashboard.md_escape import md_text
from dashboard.notices import READ_ONLY, not_an_editor
from dashboard.whatif_tables import (
    DRAFT_LABELS,
    MOVE_LABELS,
    PRICE_LABELS,
    TABLE_NAMES,
    CellProblem,
    TableLevers,
    read_tables,
    table_rows,
)
from tracking.pricing import load_price_book

TTL = 60
DRAWS = 1000
ROWS = "whatif.rows"  # the lever tables' rows as last loaded from a scenario
GENERATION = "whatif.generation"
LOAD = "whatif.load_name"
TABLES = ("prices", "drafts", "moves")


@st.cache_data(ttl=TTL, show_spinner="Reading the baseline…")
def inputs(
    url: str, end: date, days: int
) -> tuple[Baseline, dict[str, dict[str, Fraction]], list, list[str]]:
    """The baseline, the current rates of every priced model, the budgets it can project."""
    with engine(url).connect() as conn:
        baseline = whatif_data.load_baseline(conn, end, days)
        models = whatif_data.priced_models(conn)
        rates = rates_from_book(load_price_book(conn), models, datetime.now(UTC))
        limits, skipped = whatif_data.budget_limits(conn)
    return baseline, rates, limits, skipped


def _editor(
    name: str,
    title: str,
    labels: dict[str, str],
    config: dict[str, Any],
    dropped: list[CellProblem],
) -> list[dict[str, Any]]:
    """One lever table (its rows as loaded from a scenario, else empty), as edited; cells the
    returned table cannot carry are added to ``dropped``."""
    st.markdown(title)
    rows = st.session_state.get(ROWS, {}).get(name, [])
    frame = pd.DataFrame(rows, columns=list(labels), dtype="object")
    config = {c: st.column_config.TextColumn(label) for c, label in labels.items()} | config
    key = editor_key(name)
    edited = st.data_editor(
        frame, key=key, num_rows="dynamic", hide_index=True, column_config=config
    )
    # a row Streamlit left out of ``edited`` for its text: named, so nothing is simulated
    for row, column, why in unstorable_cells(st.session_state.get(key) or {}, len(frame)):
        dropped.append(CellProblem(TABLE_NAMES[name], row, labels.get(column, column), why))
    return list(edited.to_dict("records"))


def editor_key(name: str) -> str:
    """A lever table's key: a new one after a load, so that the table starts from its rows."""
    return f"whatif.{name}.{st.session_state.get(GENERATION, 0)}"


def tables(baseline: Baseline, rates: dict[str, Any]) -> TableLevers:
    """The price changes, feature moves and draft prices as set in their tables."""
    models = sorted({line.model_key for line in baseline.lines} | set(rates))
    features = sorted({line.feature for line in baseline.lines})

    def pick(labels: dict[str, str], column: str, options: list[str]) -> dict[str, Any]:
        return {column: st.column_config.SelectboxColumn(labels[column], options=options)}

    dropped: list[CellProblem] = []
    left, right = st.columns(2)
    with left:
        title = "**Price changes** (a model's price up or down in %)"
        prices = _editor(
            "prices", title, PRICE_LABELS, pick(PRICE_LABELS, "model", models), dropped
        )
    with right:
        title = "**Draft price table** (dollars per 1M tokens; other units kept)"
        units = list(RATE_UNITS)
        drafts = _editor("drafts", title, DRAFT_LABELS, pick(DRAFT_LABELS, "unit", units), dropped)
    title = (
        "**Feature moves** (from model blank: from every model; a target needs a price, "
        "current or drafted; token ratios blank: 1)"
    )
    choices = pick(MOVE_LABELS, "feature", features) | pick(MOVE_LABELS, "from_model", models)
    moves = _editor("moves", title, MOVE_LABELS, choices, dropped)
    if dropped:  # the tables' row numbers are off by the rows left out: these alone
        return TableLevers(problems=dropped)
    return read_tables(prices, moves, drafts, rates)


def levers(baseline: Baseline, rates: dict[str, Any]) -> Levers | None:
    """The levers as set in the widgets (text kept as typed: ``simulate`` checks it), or None
    after naming every bad cell of the lever tables."""
    cols = st.columns(3)
    horizon = cols[0].slider("Horizon (months)", 1, 12, 12, key="whatif.horizon")
    growth = cols[1].text_input("User growth % per month", "0", key="whatif.growth")
    usage = cols[2].text_input("Usage per user, % change", "0", key="whatif.usage")
    cols = st.columns(3)
    cache = cols[0].text_input(
        "Cache-hit rate % of input", "", key="whatif.cache", help="empty: as in the baseline"
    )
    output = cols[1].text_input("Output length, % change", "0", key="whatif.output")
    found = tables(baseline, rates)
    if found.problems:
        st.error(
            "Nothing is simulated. Fix these cells first:\n\n"
            + "\n\n".join(f"- {md_text(p)}" for p in found.problems)
        )
        return None
    return Levers(
        horizon_months=horizon,
        price_pct=found.price_pct,
        draft_prices=found.draft_prices,
        moves=found.moves,
        user_growth_pct=growth,  # type: ignore[arg-type]
        usage_per_user_pct=usage,  # type: ignore[arg-type]
        cache_hit_pct=cache.strip() or None,  # type: ignore[arg-type]
        output_length_pct=output,  # type: ignore[arg-type]
    )


def load(levers: Levers) -> None:
    """Put saved levers into the widgets and tables (a callback: before the widgets exist)."""
    st.session_state["whatif.horizon"] = levers.horizon_months
    st.session_state["whatif.growth"] = str(levers.user_growth_pct)
    st.session_state["whatif.usage"] = str(levers.usage_per_user_pct)
    st.session_state["whatif.cache"] = (
        "" if levers.cache_hit_pct is None else str(levers.cache_hit_pct)
    )
    st.session_state["whatif.output"] = str(levers.output_length_pct)
    st.session_state[ROWS] = table_rows(levers)
    for name in TABLES:  # the tables' edits so far are replaced by the scenario's rows
        st.session_state.pop(editor_key(name), None)
    st.session_state[GENERATION] = st.session_state.get(GENERATION, 0) + 1


def months_frame(projection: Projection) -> pd.DataFrame:
    """One row per month: exact cost, band and calls as text, floats to draw."""
    rows = [
        {
            "month": m.month,
            "cost_usd": str(m.cost),
            "low_usd": str(m.low),
            "high_usd": str(m.high),
            "calls": m.calls,
            "cost": float(m.cost),
            "low": float(m.low),
            "high": float(m.high),
        }
        for m in projection.months
    ]
    return pd.DataFrame(rows)


def plans_frame(projection: Projection) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "plan": p.plan,
                "month": p.month,
                "revenue": str(p.revenue),
                "ai_cost": str(p.ai_cost),
                "margin": str(p.margin),
                "margin_pct": "n/a" if p.margin_pct is None else str(p.margin_pct),
            }
            for p in projection.plans
        ]
    )


def budgets_frame(projection: Projection) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "budget": b.budget,
                "monthly_limit": str(b.monthly_limit),
                "breaks_in_month": "never" if b.month is None else str(b.month),
                "projected_spend": "" if b.cost is None else str(b.cost),
            }
            for b in projection.budgets
        ]
    )


def tornado_frame(rows: list) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "lever": r.lever,
                "low_value": r.low_value,
                "high_value": r.high_value,
                "low_total": float(r.low_total),
                "high_total": float(r.high_total),
                "swing_usd": str(r.swing),
            }
            for r in rows
        ]
    )


def whatif_section(url: str, access: Access, today: date) -> None:
    days = int(
        st.number_input("Baseline: last N days", 7, 90, 28, key="whatif.days", help="UTC days")
    )
    end = today - timedelta(days=1)
    baseline, rates, limits, skipped = inputs(url, end, days)
    st.caption(
        f"Baseline {end - timedelta(days=days - 1)} to {end}: {usd(baseline.cost)}, "
        f"{usd(baseline.monthly_cost)} per average month."
    )
    chosen = levers(baseline, rates)
    if chosen is None:
        return
    try:
        projection = simulate(baseline, chosen, rates, limits, draws=DRAWS)
        rows = sensitivity(baseline, chosen, rates)
    except LeverError as exc:
        st.error(md_text(exc))
        return
    first = projection.months[0]
    cols = st.columns(3)
    cols[0].metric("Baseline per month", usd(baseline.monthly_cost))
    cols[1].metric("Month 1 projected", usd(first.cost))
    cols[2].metric(f"Total over {len(projection.months)} months", usd(projection.total))
    for note in projection.notes:
        st.warning(md_text(note))
    frame = months_frame(projection)
    st.altair_chart(charts.projection_band(frame), width="stretch")
    st.dataframe(frame[["month", "cost_usd", "low_usd", "high_usd", "calls"]], hide_index=True)
    if projection.plans:
        st.subheader("Margin per plan")
        st.dataframe(plans_frame(projection), hide_index=True)
    if projection.budgets:
        st.subheader("Budgets")
        st.dataframe(budgets_frame(projection), hide_index=True)
    if skipped:
        listed = ", ".join(md_text(name) for name in skipped)
        st.caption(f"Not projected (a user, customer or tag scope): {listed}")
    st.subheader("Which lever moves the total most")
    tornado = tornado_frame(rows)
    st.altair_chart(charts.tornado(tornado, float(projection.total)), width="stretch")
    st.dataframe(tornado.drop(columns=["low_total", "high_total"]), hide_index=True)
    scenarios_section(url, access, baseline, rates, chosen)


def scenarios_section(
    url: str, access: Access, baseline: Baseline, rates: dict[str, Any], chosen: Levers
) -> None:
    st.subheader("Scenarios")
    with engine(url).connect() as conn:
        saved = scenarios.list_scenarios(conn)
    if access.can_edit:
        cols = st.columns([3, 1])
        name = cols[0].text_input("Save these levers as", key="whatif.save_name")
        if cols[1].button("Save scenario", key="whatif.save") and save_scenario(
            url, access, name, chosen
        ):
            with engine(url).connect() as conn:
                saved = scenarios.list_scenarios(conn)
    else:
        st.caption(access.reason or READ_ONLY)
    names = [s.name for s in saved]
    if names:
        cols = st.columns([3, 1])
        wanted = cols[0].selectbox("Load a saved scenario into the levers", names, key=LOAD)
        kept = {s.name: s.levers for s in saved}
        cols[1].button("Load", key="whatif.load", on_click=load, args=(kept[wanted],))
    picked = st.multiselect("Compare saved scenarios", names, key="whatif.compare")
    if picked:
        found = {s.name: s for s in saved}
        results = [("current levers", simulate(baseline, chosen, rates, draws=0))]
        for name in picked:
            try:
                results.append((name, simulate(baseline, found[name].levers, rates, draws=0)))
            except LeverError as exc:
                st.error(md_text(f"{name}: {exc}"))
        st.dataframe(scenarios.compare(results), hide_index=True)
    if access.can_edit and names:
        cols = st.columns([3, 1])
        gone = cols[0].selectbox("Delete scenario", names, key="whatif.delete_name")
        if cols[1].button("Delete", key="whatif.delete"):
            delete_scenario(url, access, gone)


def save_scenario(url: str, access: Access, name: str, chosen: Levers) -> bool:
    """Save the levers as ``name`` (saying so when that replaced a scenario); whether saved."""
    if not_an_editor(access):
        return False
    try:
        with engine(url).begin() as conn:
            stored = scenarios.save_scenario(conn, name, chosen, access.who or "")
    except LeverError as exc:
        st.error(md_text(exc))
        return False
    st.success(
        f"Saved {md_text(repr(name))}, replacing the scenario of that name (its levers are in the"
        " audit log)."
        if scenarios.replaced(stored)
        else f"Saved {md_text(repr(name))}."
    )
    return True


def delete_scenario(url: str, access: Access, name: str) -> None:
    if not_an_editor(access):
        return
    try:
        with engine(url).begin() as conn:
            scenarios.delete_scenario(conn, name, access.who or "")
    except LeverError as exc:  # deleted in another session meanwhile
        st.error(md_text(exc))
        return
    st.rerun()
