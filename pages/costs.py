"""Costs: group the spend by user, feature, provider, model or day, and drill into the calls."""

from __future__ import annotations

from dataclasses import replace

import streamlit as st

from dashboard import charts, data, formats, notices, tables
from dashboard.db import store_url
from dashboard.filter_text import parse_tags
from dashboard.filters import current
from dashboard.raw_calls import DRILL_PAGE, GROUPS

st.title("Costs")
url = store_url()
state = notices.store_or_stop(url)
if state.kind == "empty":
    st.info("No calls logged yet: the Overview page can load demo data.")
    st.stop()
notices.future_calls(state)
base = current()

left, right = st.columns([3, 2])
group = left.radio(
    "Group by",
    GROUPS,
    index=GROUPS.index("feature"),
    horizontal=True,
    key="costs_group",
    format_func=str.capitalize,
)
typed = parse_tags(right.text_input("Tags", key="costs_tags", placeholder="plan=pro, team=growth"))
if message := typed.message("the tags"):
    st.warning(message)
f = replace(base, tags=typed.values)
if f.tags:
    st.caption("Tag filters read the raw calls of the range (the rollups have no tags): slower.")

view = data.cost_view(url, f, group)
if view.totals.calls == 0:
    span = state.span
    st.info(
        f"No calls from {f.start} to {f.end} for these filters "
        f"(the store has calls from {span.first_day} to {span.last_day})."
    )
    st.stop()

cols = st.columns(4)
cols[0].metric("Cost", formats.cost_text(view.totals))
cols[1].metric("Calls", f"{view.totals.calls:,}")
cols[2].metric("Groups", f"{view.groups:,}")
cols[3].metric("Unpriced calls", f"{view.totals.unpriced_calls:,}")
if note := formats.unpriced_note(view.totals):
    st.caption(note)

frame = view.table
if view.capped:
    st.caption(
        f"The table holds the {len(frame):,} most expensive of {view.groups:,} groups; the "
        "figures above count them all. Narrow the filters to see the others."
    )
if group == "day":
    st.altair_chart(charts.cost_line(frame), width="stretch")
else:
    if caption := charts.bars_caption(frame, group):
        st.caption(caption)
    if frame["cost_usd"].notna().any():  # no bars to draw when every cost is unknown
        st.altair_chart(charts.cost_bars(frame, group), width="stretch")

shown, config = tables.cost_table(frame, group)
st.dataframe(shown, hide_index=True, width="stretch", column_config=config)
st.download_button(
    "Download CSV",
    data=formats.csv_table(frame, group),
    file_name=f"unitwise_costs_by_{group}_{f.start}_{f.end}.csv",
    mime="text/csv",
)

st.subheader("Calls of one group")
choice = st.selectbox(
    f"Pick a {group}",
    frame[group].tolist(),
    index=None,
    placeholder=f"Choose a {group} to list its calls",
    key=f"drill_{group}",
    format_func=str,
)
if choice is not None:
    count = int(frame.loc[frame[group] == choice, "calls"].iloc[0])
    pages = max(1, -(-count // DRILL_PAGE))
    page = st.number_input(
        f"Page (1 to {pages:,})",
        min_value=1,
        max_value=pages,
        value=1,
        key=f"drill_page_{group}",
        help=f"{count:,} calls, {DRILL_PAGE} to a page: pages 1 to {pages:,}.",
    )
    rows = data.drill_down(url, f, group, choice, int(page) - 1)
    first = (int(page) - 1) * DRILL_PAGE + 1
    st.caption(f"Calls {first:,} to {first + len(rows) - 1:,} of {count:,}, newest first.")
    shown_calls, calls_config, order = tables.calls_table(rows, group)
    st.dataframe(
        shown_calls,
        hide_index=True,
        width="stretch",
        column_config=calls_config,
        column_order=order,
    )
