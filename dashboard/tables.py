"""The tables the pages show: readable headers, thousands separators, costs to enough digits,
and unknown costs said in words. Built here so that every page shows money the same way."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from dashboard.formats import money_decimals

LABELS = {
    "user": "User",
    "feature": "Feature",
    "provider": "Provider",
    "model": "Model",
    "day": "Day",
}


def _count(label: str) -> Any:
    return st.column_config.NumberColumn(label, format="localized", width="small")


def _money(label: str, costs: pd.Series) -> Any:
    step = 10.0 ** -money_decimals(costs)
    return st.column_config.NumberColumn(label, format="dollar", step=step, width="small")


def cost_table(table: pd.DataFrame, group: str) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The Costs table and its column settings: a group of unpriced calls has no cost and says
    so, a partly unpriced one says how many calls its cost leaves out."""
    unknown = table["unpriced"] >= table["calls"]
    partial = (table["unpriced"] > 0) & ~unknown
    shown = table[[group, "cost_usd", "share_pct", "calls", "errors", "unpriced"]].copy()
    shown["note"] = ""
    shown.loc[unknown, "note"] = "unpriced: cost unknown"
    shown.loc[partial, "note"] = [f"{n:,} calls unpriced" for n in table.loc[partial, "unpriced"]]
    shown["input_tokens"] = table["input_tokens"]
    shown["output_tokens"] = table["output_tokens"]
    config = {
        group: st.column_config.Column(LABELS[group]),
        "cost_usd": _money("Cost", table["cost_usd"]),
        "share_pct": st.column_config.NumberColumn("Share", format="%.1f%%", width="small"),
        "calls": _count("Calls"),
        "errors": _count("Errors"),
        "unpriced": _count("Unpriced"),
        "note": st.column_config.TextColumn("Cost note"),
        "input_tokens": _count("Input tokens"),
        "output_tokens": _count("Output tokens"),
    }
    if group == "day":
        config[group] = st.column_config.DateColumn("Day", format="YYYY-MM-DD")
    return shown, config


DRILL_LABELS = {
    "provider": "Provider",
    "model": "Model",
    "feature": "Feature",
    "user_id": "User",
    "status": "Status",
    "error_type": "Error",
}


def calls_table(rows: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, Any]]:
    """A page of raw calls: no "None" (an unpriced call's cost is empty and its note says so,
    a missing user or feature reads "(none)", no error is blank)."""
    shown = rows.copy()
    unpriced = shown["cost_usd"].isna()
    shown["cost_usd"] = [None if pd.isna(v) else float(v) for v in rows["cost_usd"]]
    for column in ("user_id", "feature"):
        shown[column] = shown[column].fillna("(none)")
    shown["error_type"] = shown["error_type"].fillna("")
    shown.insert(shown.columns.get_loc("cost_usd") + 1, "note", "")
    shown.loc[unpriced, "note"] = "unpriced"
    config: dict[str, Any] = {
        "occurred_at": st.column_config.DatetimeColumn("When (UTC)", format="YYYY-MM-DD HH:mm:ss"),
        **{name: st.column_config.TextColumn(label) for name, label in DRILL_LABELS.items()},
        "duration_ms": _count("Latency (ms)"),
        "input_tokens": _count("Input tokens"),
        "cache_read_tokens": _count("Cached"),
        "output_tokens": _count("Output tokens"),
        "cost_usd": st.column_config.NumberColumn("Cost", format="dollar", step=1e-6),
        "note": st.column_config.TextColumn("Cost note", width="small"),
    }
    return shown, config
