"""The tables the pages show: readable headers, thousands separators, costs to enough digits,
and unknown costs said in words. Built here so that every page shows money the same way."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from dashboard.formats import UNPRICED, money_decimals, plural

Shown = Any  # a pandas Styler over the shown frame: what st.dataframe takes
# st.dataframe draws a missing number as "None" whatever a Styler says, so in the frame a page
# shows (never in the data) an unknown cost, or its share, is this number, displayed in words.
UNKNOWN = -1.0

LABELS = {
    "user": "User",
    "feature": "Feature",
    "provider": "Provider",
    "model": "Model",
    "day": "Day",
}


def _count(label: str, help: str | None = None) -> Any:
    return st.column_config.NumberColumn(label, format="localized", width="small", help=help)


def _dollars(costs: pd.Series) -> Any:
    """A formatter showing every cost of the column to the digits its smallest one needs."""
    decimals = money_decimals(costs)
    return lambda value: f"${value:,.{decimals}f}"


def _display(shown: pd.DataFrame, unknown: str, money: list[str]) -> Shown:
    """Costs as text over their numbers (sorting stays numeric, unknown costs below $0):
    unknown ones in words, not "None"; shares to a tenth of a percent, blank where unknown."""
    known = {name: shown[name].mask(shown[name] == UNKNOWN) for name in money}
    styler = shown.style.format(
        {name: _or_unknown(_dollars(known[name]), unknown) for name in money}, subset=money
    )
    if "share_pct" in shown:
        styler = styler.format(_or_unknown("{:.1f}%".format, ""), subset=["share_pct"])
    return styler


def _or_unknown(show: Any, unknown: str) -> Any:
    return lambda value: unknown if value == UNKNOWN else show(value)


def cost_table(table: pd.DataFrame, group: str) -> tuple[Shown, dict[str, Any]]:
    """The Costs table and its column settings: a group of unpriced calls has no cost and says
    so, a partly unpriced one says how many calls its cost leaves out."""
    unknown = table["unpriced"] >= table["calls"]
    partial = (table["unpriced"] > 0) & ~unknown
    shown = table[[group, "cost_usd", "share_pct", "calls", "errors", "unpriced"]].copy()
    shown[["cost_usd", "share_pct"]] = shown[["cost_usd", "share_pct"]].fillna(UNKNOWN)
    shown["note"] = ""
    shown.loc[unknown, "note"] = "unpriced: cost unknown"
    shown.loc[partial, "note"] = [
        f"{plural(n, 'call')} unpriced" for n in table.loc[partial, "unpriced"]
    ]
    shown["input_tokens"] = table["input_tokens"]
    shown["output_tokens"] = table["output_tokens"]
    config = {
        group: st.column_config.Column(LABELS[group]),
        "cost_usd": st.column_config.Column("Cost", width="small"),
        "share_pct": st.column_config.Column("Share", width="small"),
        "calls": _count("Calls"),
        "errors": _count("Errors"),
        "unpriced": _count("Unpriced"),
        "note": st.column_config.TextColumn("Cost note"),
        "input_tokens": _count("Input tokens"),
        "output_tokens": _count("Output tokens"),
    }
    if group == "day":
        config[group] = st.column_config.DateColumn("Day", format="YYYY-MM-DD")
    return _display(shown, UNPRICED, ["cost_usd"]), config


DRILL_LABELS = {
    "provider": "Provider",
    "model": "Model",
    "feature": "Feature",
    "user_id": "User",
    "status": "Status",
    "error_type": "Error",
}


def calls_table(rows: pd.DataFrame, group: str) -> tuple[Shown, dict[str, Any], list[str]]:
    """A page of the raw calls of one ``group``, its settings and the columns to show: no
    "None" (an unpriced call's cost reads "unpriced", a missing user or feature "(none)", no
    error is blank). The group's own column (the same in every row) and an error column with
    no error are not shown, so that the table fits a 1,400-pixel window without scrolling
    sideways."""
    same = {"user": "user_id", "feature": "feature", "provider": "provider", "model": "model"}
    hidden = {same.get(group), "error_type" if rows["error_type"].isna().all() else None}
    shown = rows.copy()
    shown["cost_usd"] = [UNKNOWN if pd.isna(v) else float(v) for v in rows["cost_usd"]]
    for column in ("user_id", "feature"):
        shown[column] = shown[column].fillna("(none)")
    shown["error_type"] = shown["error_type"].fillna("")
    config: dict[str, Any] = {
        "occurred_at": st.column_config.DatetimeColumn("When (UTC)", format="YYYY-MM-DD HH:mm:ss"),
        **{name: st.column_config.TextColumn(label) for name, label in DRILL_LABELS.items()},
        "provider": st.column_config.TextColumn("Provider", width="small"),
        "status": st.column_config.TextColumn("Status", width="small"),
        "duration_ms": _count("ms", "Latency in milliseconds"),
        "input_tokens": _count("Input", "Input tokens, cached ones included"),
        "cache_read_tokens": _count("Cached", "Input tokens read from the provider's cache"),
        "output_tokens": _count("Output", "Output tokens"),
        "cost_usd": st.column_config.Column("Cost", width="small"),
    }
    order = [name for name in shown.columns if name not in hidden]
    return _display(shown, UNPRICED, ["cost_usd"]), config, order
