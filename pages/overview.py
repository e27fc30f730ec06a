"""Overview: where the money goes today, this month and over the selected range."""

from __future__ import annotations

from datetime import UTC, datetime

import streamlit as st

from dashboard import breakdown, charts, data, demo, formats, notices
from dashboard.db import store_url
from dashboard.economics import MIN_HISTORY_DAYS, change, project_month_end
from dashboard.filters import current

st.title("Overview")
url = store_url()
state = notices.store_or_stop(url)
if state.kind == "empty":
    st.info(
        "No calls logged yet. Add `tracking` to a service, or load demo data here or with "
        "`python -m dashboard.demo`."
    )
    if st.button(f"Load demo data ({demo.APP_CALLS:,} calls over {demo.APP_DAYS} days)"):
        bar = st.progress(0.0, text="Loading demo data...")
        data.load_demo(
            url,
            lambda done, total: bar.progress(
                min(1.0, done / total), text=f"{done:,} of {total:,} calls"
            ),
        )
        st.rerun()
    st.stop()
notices.future_calls(state)

f = current()
now = datetime.now(UTC)
today = now.date()
frame = data.page_frame(url, f)
costs = breakdown.daily_costs(frame)
projection = project_month_end(costs, now)
today_totals = breakdown.totals(breakdown.between(frame, today, today))
month_totals = breakdown.totals(breakdown.between(frame, today.replace(day=1), today))
_, until_now_yesterday = data.yesterday_so_far(url, f, now)
delta = None if today_totals.all_unpriced else change(today_totals.cost_usd, until_now_yesterday)

top = st.columns(3)
top[0].metric(
    "Today so far",
    formats.cost_text(today_totals),
    None
    if delta is None
    else f"{delta:+,.0%} vs yesterday by {now:%H:%M} ({formats.usd(until_now_yesterday)})",
    delta_color="inverse",
    help="Today up to now against yesterday up to the same time of day (UTC).",
)
if note := formats.unpriced_note(today_totals):
    top[0].caption(note)
top[1].metric("Month to date", formats.cost_text(month_totals))
if note := formats.unpriced_note(month_totals):
    top[1].caption(note)
if projection.enough_history:
    top[2].metric(
        "Projected month end",
        formats.usd(projection.expected),
        help="Month to date plus the mean of the last 14 complete days for each day left.",
    )
    low, high = formats.usd(projection.low), formats.usd(projection.high)
    top[2].caption(f"90% band: {low} to {high}")
else:
    top[2].metric("Projected month end", "n/a")
    top[2].caption(
        f"Too little history to project: {projection.history_days} complete day(s) of calls, "
        f"{MIN_HISTORY_DAYS} needed."
    )
st.caption(
    "Today, month to date and the projection follow the calendar (UTC); the figures below "
    f"follow the date range {f.start} to {f.end}. All follow the other filters."
)

in_range = breakdown.between(frame, f.start, f.end)
totals = breakdown.totals(in_range)
speed = data.latency(url, f, totals.calls)
row = st.columns(5)
row[0].metric("Cost in range", formats.cost_text(totals))
row[1].metric("Calls", f"{totals.calls:,}")
row[2].metric("Error rate", f"{totals.error_rate:.2%}")
row[3].metric("p50 latency", formats.latency_text(speed.p50_ms))
row[4].metric("p95 latency", formats.latency_text(speed.p95_ms))
if not speed.exact:
    st.caption(f"Latency percentiles from a sample of {speed.sampled:,} calls of the range.")
notices.unpriced_models(data.unpriced_models(url, f), totals.unpriced_calls)

st.subheader("Daily cost by provider")
if in_range.empty:
    span = state.span
    st.info(
        f"No calls from {f.start} to {f.end} for these filters (the store has calls from "
        f"{span.first_day} to {span.last_day})."
    )
    st.stop()
st.altair_chart(
    charts.daily_cost_stacked(breakdown.daily_by(in_range, "provider")), width="stretch"
)

columns = st.columns(3)
tables = {
    "Top features": ("feature", breakdown.group_table(in_range, "feature")),
    "Top models": ("model", breakdown.group_table(in_range, "model")),
    "Top users": ("user", breakdown.share_of(data.top_users(url, f), totals.cost_usd)),
}
for column, (title, (group, table)) in zip(columns, tables.items(), strict=True):
    column.subheader(title)
    if table["cost_usd"].notna().any():
        column.altair_chart(charts.cost_bars(table, group, top=8), width="stretch")
    if caption := charts.bars_caption(table, group, top=8):
        column.caption(caption)
