"""Altair chart builders: the pages hand them DataFrames, they return charts with tooltips.

Each provider keeps one colour on every chart, whatever the filters leave in the frame, and a
dollar axis has as many decimals as its range needs.
"""

from __future__ import annotations

import zlib

import altair as alt
import numpy as np
import pandas as pd

from dashboard.formats import axis_format, cost_label

MONEY = "$,.4~f"  # tooltips: cents, and fractions of a cent where there are any
# Tableau 10, one colour per well-known provider; any other provider is hashed onto it
PALETTE = (
    "#4e79a7",
    "#f28e2b",
    "#e15759",
    "#76b7b2",
    "#59a14f",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
)
PROVIDER_COLOURS = {
    "openai": "#59a14f",
    "anthropic": "#f28e2b",
    "google": "#4e79a7",
    "mistral": "#e15759",
    "cohere": "#b07aa1",
    "deepseek": "#76b7b2",
    "xai": "#9c755f",
    "groq": "#edc948",
    "perplexity": "#ff9da7",
    "azure": "#bab0ac",
    "aws": "#499894",
}


def provider_colour(provider: str) -> str:
    """The provider's own colour: fixed for the well-known ones, a stable hash for others."""
    found = PROVIDER_COLOURS.get(provider.lower())
    return found or PALETTE[zlib.crc32(provider.encode()) % len(PALETTE)]


def _colour(frame: pd.DataFrame, key: str) -> alt.Color:
    title = key.capitalize()
    if key != "provider":
        return alt.Color(f"{key}:N", title=title)
    domain = sorted(frame[key].unique())
    scale = alt.Scale(domain=domain, range=[provider_colour(p) for p in domain])
    return alt.Color(f"{key}:N", title=title, scale=scale)


def _top(values: pd.Series) -> float:
    return float(values.max()) if len(values) and pd.notna(values.max()) else 0.0


def daily_cost_stacked(frame: pd.DataFrame, color: str = "provider") -> alt.Chart:
    """Cost per day, stacked by ``color`` (the provider by default): one row of ``frame`` per
    day and ``color`` (``breakdown.daily_by``), unpriced costs undrawn and said in the tooltip."""
    highest = _top(frame.groupby("day")["cost_usd"].sum()) if len(frame) else 0.0
    frame = frame.assign(
        cost_label=[
            cost_label(int(n), int(c), int(u))
            for n, c, u in zip(frame["cost_nanos"], frame["calls"], frame["unpriced"], strict=True)
        ]
    )
    return (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=alt.X("day:T", title=None, axis=alt.Axis(format="%b %d")),
            y=alt.Y("cost_usd:Q", title="Cost (USD)", axis=alt.Axis(format=axis_format(highest))),
            color=_colour(frame, color),
            tooltip=[
                alt.Tooltip("day:T", title="Day", format="%a %b %d, %Y"),
                alt.Tooltip(f"{color}:N", title=color.capitalize()),
                alt.Tooltip("cost_label:N", title="Cost"),
                alt.Tooltip("calls:Q", title="Calls", format=","),
            ],
        )
        .properties(height=300)
    )


def cost_bars(frame: pd.DataFrame, key: str, top: int = 15) -> alt.Chart:
    """Horizontal bars of the ``top`` most expensive groups (groups of unknown cost have no
    bar: the tables list them as unpriced)."""
    shown = frame.dropna(subset=["cost_usd"]).nlargest(top, "cost_usd")
    return (
        alt.Chart(shown)
        .mark_bar()
        .encode(
            x=alt.X(
                "cost_usd:Q",
                title="Cost (USD)",
                axis=alt.Axis(format=axis_format(_top(shown["cost_usd"])), tickCount=5),
            ),
            y=alt.Y(f"{key}:N", sort="-x", title=None, axis=alt.Axis(labelOverlap=False)),
            tooltip=[
                alt.Tooltip(f"{key}:N", title=key.capitalize()),
                alt.Tooltip("cost_usd:Q", title="Cost", format=MONEY),
                alt.Tooltip("calls:Q", title="Calls", format=","),
                alt.Tooltip("unpriced:Q", title="Unpriced calls (not in the cost)", format=","),
                alt.Tooltip("share_pct:Q", title="Share (%)", format=".1f"),
            ],
        )
        .properties(height=alt.Step(26))
    )


def bars_caption(frame: pd.DataFrame, key: str, top: int = 15) -> str | None:
    """What a bar chart leaves out: the groups past its top ``top`` and those of unknown cost."""
    priced = int(frame["cost_usd"].notna().sum())
    unknown = len(frame) - priced
    parts = []
    if priced > top:
        parts.append(f"the {top} costliest of {priced:,} {key}s")
    if unknown:
        parts.append(f"{unknown:,} {key}{'s' if unknown > 1 else ''} of unknown cost not drawn")
    return ("Chart: " + "; ".join(parts) + ".") if parts else None


def cost_line(frame: pd.DataFrame) -> alt.Chart:
    """Cost per day as a line (the Costs page grouped by day)."""
    return (
        alt.Chart(frame)
        .mark_line(point=True)
        .encode(
            x=alt.X("day:T", title=None, axis=alt.Axis(format="%b %d")),
            y=alt.Y(
                "cost_usd:Q",
                title="Cost (USD)",
                axis=alt.Axis(format=axis_format(_top(frame["cost_usd"]))),
            ),
            tooltip=[
                alt.Tooltip("day:T", title="Day", format="%a %b %d, %Y"),
                alt.Tooltip("cost_usd:Q", title="Cost", format=MONEY),
                alt.Tooltip("calls:Q", title="Calls", format=","),
                alt.Tooltip("errors:Q", title="Errors", format=","),
            ],
        )
        .properties(height=300)
    )


def price_steps(points: pd.DataFrame) -> alt.Chart:
    """A model's rates over time as steps: each rate holds from its version's date to the next."""
    return (
        alt.Chart(points)
        .mark_line(interpolate="step-after", point=True)
        .encode(
            x=alt.X("from:T", title="In force from"),
            y=alt.Y("dollars:Q", title="Rate ($ per the unit shown)"),
            color=alt.Color("rate_of:N", title="Rate of"),
            tooltip=[
                alt.Tooltip("rate_of:N", title="Rate of"),
                alt.Tooltip("from:T", title="From", format="%Y-%m-%d %H:%M"),
                alt.Tooltip("dollars:Q", title="Dollars", format="$,.6~f"),
            ],
        )
        .properties(height=260)
    )


def budget_history(points: pd.DataFrame) -> alt.Chart:
    """A budget's past periods: spent as bars, the period's limit (rollover included) as a
    tick on each, so an overspent period shows its bar above the tick."""
    base = alt.Chart(points).encode(x=alt.X("period:N", title=None, sort=None))
    tooltip = [
        alt.Tooltip("period:N", title="Period"),
        alt.Tooltip("spent:Q", title="Spent", format=MONEY),
        alt.Tooltip("limit:Q", title="Limit", format=MONEY),
    ]
    top = max(_top(points["spent"]), _top(points["limit"])) if len(points) else 0.0
    bars = base.mark_bar().encode(
        y=alt.Y("spent:Q", title="Spent (USD)", axis=alt.Axis(format=axis_format(top))),
        tooltip=tooltip,
    )
    ticks = base.mark_tick(color="#d62728", thickness=2).encode(y="limit:Q", tooltip=tooltip)
    return (bars + ticks).properties(height=220)


def projection_band(frame: pd.DataFrame) -> alt.LayerChart:
    """Projected cost per month (``month``, ``cost``) with its band (``low``..``high``)."""
    highest = _top(frame["high"])
    y_axis = alt.Axis(format=axis_format(highest))
    base = alt.Chart(frame).encode(x=alt.X("month:O", title="Month"))
    band = base.mark_area(opacity=0.25).encode(
        y=alt.Y("low:Q", title="Cost (USD)", axis=y_axis), y2="high:Q"
    )
    line = base.mark_line(point=True).encode(
        y=alt.Y("cost:Q", axis=y_axis),
        tooltip=[
            alt.Tooltip("month:O", title="Month"),
            alt.Tooltip("cost:Q", title="Projected", format=MONEY),
            alt.Tooltip("low:Q", title="Low (5%)", format=MONEY),
            alt.Tooltip("high:Q", title="High (95%)", format=MONEY),
        ],
    )
    return band + line


def tornado(frame: pd.DataFrame, total: float) -> alt.LayerChart:
    """Each lever's low and high total (``lever``, ``low_total``, ``high_total``) as a bar
    from one to the other, the biggest swing on top, with the scenario's ``total`` as a rule."""
    order = list(frame["lever"])
    bars = (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            y=alt.Y("lever:N", sort=order, title=None),
            x=alt.X("low_total:Q", title="Total cost over the horizon (USD)"),
            x2="high_total:Q",
            tooltip=[
                alt.Tooltip("lever:N", title="Lever"),
                alt.Tooltip("low_value:N", title="Low"),
                alt.Tooltip("low_total:Q", title="Total at low", format=MONEY),
                alt.Tooltip("high_value:N", title="High"),
                alt.Tooltip("high_total:Q", title="Total at high", format=MONEY),
            ],
        )
    )
    rule = alt.Chart(pd.DataFrame({"total": [total]})).mark_rule().encode(x="total:Q")
    return bars + rule


def margin_histogram(margins: pd.Series, bins: int = 40) -> alt.Chart:
    """Customers by margin in dollars (floats, to draw only), binned here rather than by Vega:
    the chart carries ``bins`` rows, not one per customer (20,000 rows sent to the browser on
    every run were most of the Users & margins page's render)."""
    values = margins.astype(float)
    counts, edges = np.histogram(values, bins=bins if len(values) else 1)
    frame = pd.DataFrame({"low": edges[:-1], "high": edges[1:], "customers": counts})
    return (
        alt.Chart(frame[frame["customers"] > 0])
        .mark_bar()
        .encode(
            x=alt.X("low:Q", title="Margin per customer ($)"),
            x2="high:Q",
            y=alt.Y("customers:Q", title="Customers"),
            tooltip=[
                alt.Tooltip("low:Q", title="From $", format=",.2f"),
                alt.Tooltip("high:Q", title="To $", format=",.2f"),
                alt.Tooltip("customers:Q", title="Customers"),
            ],
        )
        .properties(height=220)
    )
