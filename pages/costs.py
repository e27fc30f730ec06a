"""Costs: group the spend by user, feature, provider, model or day, and drill into the calls."""

from __future__ import annotations

from dataclasses import replace

import streamlit as st

from dashboard import breakdown, charts, data
from dashboard.db import store_url
from dashboard.filters import current, frame_window, parse_tags, today
from dashboard.queries import DRILL_PAGE, GROUPS, MAX_GROUPS

st.title("Costs")
url = store_url()
base = current()

left, right = st.columns([2, 3])
group = left.radio(
    "Group by", GROUPS, index=GROUPS.index("feature"), horizontal=True, key="costs_group"
)
tags = parse_tags(right.text_input("Tags", key="costs_tags", placeholder="plan=pro, team=growth"))
f = replace(base, tags=tags)
if tags:
    st.caption("Tag filters read the raw calls of the range (the rollups have no tags): slower.")

window = None
if not tags:  # one rollup read per filter set, cached and shared with the Overview
    window = breakdown.between(
        data.day_frame(url, base.with_dates(*frame_window(base, today()))), f.start, f.end
    )
if window is not None and group != "user":
    frame = breakdown.group_table(window, group)
else:  # the rollups' per-user grain, or the raw calls for tags
    frame = data.cost_by(url, f, group)
if frame.empty:
    st.info(f"No calls from {f.start} to {f.end} for these filters.")
    st.stop()

totals = breakdown.totals(window) if window is not None else None
cols = st.columns(4)
cols[0].metric("Cost", f"${totals.cost_usd:,.2f}" if totals else f"${frame['cost_usd'].sum():,.2f}")
cols[1].metric("Calls", f"{totals.calls if totals else int(frame['calls'].sum()):,}")
cols[2].metric("Groups", f"{len(frame):,}")
cols[3].metric(
    "Unpriced calls", f"{totals.unpriced_calls if totals else int(frame['unpriced'].sum()):,}"
)

if len(frame) >= MAX_GROUPS:
    st.caption(f"The {MAX_GROUPS:,} most expensive groups; narrow the filters to see others.")
chart = charts.cost_line(frame) if group == "day" else charts.cost_bars(frame, group)
st.altair_chart(chart, width="stretch")

st.dataframe(
    frame,
    hide_index=True,
    width="stretch",
    column_config={
        "cost_usd": st.column_config.NumberColumn("Cost", format="$%.2f"),
        "share_pct": st.column_config.NumberColumn("Share", format="%.1f%%"),
        "calls": st.column_config.NumberColumn("Calls", format="%d"),
        "errors": st.column_config.NumberColumn("Errors", format="%d"),
        "unpriced": st.column_config.NumberColumn("Unpriced", format="%d"),
        "input_tokens": st.column_config.NumberColumn("Input tokens", format="%d"),
        "output_tokens": st.column_config.NumberColumn("Output tokens", format="%d"),
    },
)
st.download_button(
    "Download CSV",
    data=frame.to_csv(index=False),
    file_name=f"unitwise_costs_by_{group}_{f.start}_{f.end}.csv",
    mime="text/csv",
)

st.subheader("Calls of one group")
choice = st.selectbox(
    f"Pick a {group}", [None, *frame[group].tolist()], key=f"drill_{group}", format_func=str
)
if choice is not None:
    count = int(frame.loc[frame[group] == choice, "calls"].iloc[0])
    pages = max(1, -(-count // DRILL_PAGE))
    page = st.number_input(f"Page (of {pages:,})", 1, pages, 1, key=f"drill_page_{group}")
    rows = data.drill_down(url, f, group, choice, int(page) - 1)
    first = (int(page) - 1) * DRILL_PAGE + 1
    st.caption(f"Calls {first:,} to {first + len(rows) - 1:,} of {count:,}, newest first.")
    st.dataframe(
        rows,
        hide_index=True,
        width="stretch",
        column_config={
            "occurred_at": st.column_config.DatetimeColumn(
                "When (UTC)", format="YYYY-MM-DD HH:mm:ss"
            ),
            "cost_usd": st.column_config.NumberColumn("Cost", format="$%.6f"),
        },
    )
