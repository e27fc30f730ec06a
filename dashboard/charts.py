"""Altair chart builders: the pages hand them DataFrames, they return charts with tooltips."""

from __future__ import annotations

import altair as alt
import pandas as pd

MONEY = "$,.2f"


def daily_cost_stacked(frame: pd.DataFrame, color: str = "provider") -> alt.Chart:
    """Cost per day, stacked by ``color`` (the provider by default)."""
    return (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=alt.X("day:T", title=None, axis=alt.Axis(format="%b %d")),
            y=alt.Y("sum(cost_usd):Q", title="Cost (USD)", axis=alt.Axis(format="$,.2~f")),
            color=alt.Color(f"{color}:N", title=color.capitalize()),
            tooltip=[
                alt.Tooltip("day:T", title="Day", format="%a %b %d, %Y"),
                alt.Tooltip(f"{color}:N", title=color.capitalize()),
                alt.Tooltip("sum(cost_usd):Q", title="Cost", format=MONEY),
                alt.Tooltip("sum(calls):Q", title="Calls", format=","),
            ],
        )
        .properties(height=300)
    )


def cost_bars(frame: pd.DataFrame, key: str, top: int = 15) -> alt.Chart:
    """Horizontal bars of the ``top`` most expensive groups."""
    shown = frame.nlargest(top, "cost_usd")
    return (
        alt.Chart(shown)
        .mark_bar()
        .encode(
            x=alt.X("cost_usd:Q", title="Cost (USD)", axis=alt.Axis(format="$,.2~f")),
            y=alt.Y(f"{key}:N", sort="-x", title=None, axis=alt.Axis(labelOverlap=False)),
            tooltip=[
                alt.Tooltip(f"{key}:N", title=key.capitalize()),
                alt.Tooltip("cost_usd:Q", title="Cost", format=MONEY),
                alt.Tooltip("calls:Q", title="Calls", format=","),
                alt.Tooltip("share_pct:Q", title="Share (%)", format=".1f"),
            ],
        )
        .properties(height=alt.Step(26))
    )


def cost_line(frame: pd.DataFrame) -> alt.Chart:
    """Cost per day as a line (the Costs page grouped by day)."""
    return (
        alt.Chart(frame)
        .mark_line(point=True)
        .encode(
            x=alt.X("day:T", title=None, axis=alt.Axis(format="%b %d")),
            y=alt.Y("cost_usd:Q", title="Cost (USD)", axis=alt.Axis(format="$,.2~f")),
            tooltip=[
                alt.Tooltip("day:T", title="Day", format="%a %b %d, %Y"),
                alt.Tooltip("cost_usd:Q", title="Cost", format=MONEY),
                alt.Tooltip("calls:Q", title="Calls", format=","),
                alt.Tooltip("errors:Q", title="Errors", format=","),
            ],
        )
        .properties(height=300)
    )
