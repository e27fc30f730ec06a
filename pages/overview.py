"""Overview: where the money goes today, this month and over the selected range."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import streamlit as st
from sqlalchemy.exc import DBAPIError

from dashboard import breakdown, charts, data, demo
from dashboard.db import engine, store_url
from dashboard.economics import change, project_month_end
from dashboard.filters import current, frame_window

st.title("Overview")
url = store_url()
try:
    span = data.store_span(url)
except DBAPIError:
    st.error(
        "The store has no tables yet. Run `python -m tracking migrate --url URL` (or `make run`)."
    )
    st.stop()

if span.empty:
    st.info(
        "No calls logged yet. Add `tracking` to a service, or load demo data here or with "
        "`python -m dashboard.demo`."
    )
    if st.button(f"Load demo data ({demo.APP_CALLS:,} calls over {demo.APP_DAYS} days)"):
        bar = st.progress(0.0, text="Loading demo data...")
        demo.load(
            engine(url),
            calls=demo.APP_CALLS,
            days=demo.APP_DAYS,
            seed=demo.DEFAULT_SEED,
            progress=lambda done, total: bar.progress(
                min(1.0, done / total), text=f"{done:,} of {total:,} calls"
            ),
        )
        data.clear()
        st.rerun()
    st.stop()

f = current()
now = datetime.now(UTC)
today = now.date()
frame = data.day_frame(url, f.with_dates(*frame_window(f, today)))
costs = breakdown.daily_costs(frame)
projection = project_month_end(costs, now)
zero = Decimal(0)
spent_today = costs.get(today, zero)
spent_yesterday = costs.get(today - timedelta(days=1), zero)
delta = change(spent_today, spent_yesterday)

top = st.columns(3)
top[0].metric(
    "Today",
    f"${spent_today:,.2f}",
    None if delta is None else f"{delta:+.0%} vs yesterday (${spent_yesterday:,.2f})",
    delta_color="inverse",
)
top[1].metric("Month to date", f"${projection.month_to_date:,.2f}")
top[2].metric(
    "Projected month end",
    f"${projection.expected:,.2f}",
    help="Month to date plus the mean of the last 14 complete days for each day left.",
)
top[2].caption(f"90% band: ${projection.low:,.2f} to ${projection.high:,.2f}")
st.caption(
    "Today, month to date and the projection follow the calendar (UTC); the figures below "
    f"follow the date range {f.start} to {f.end}. All follow the other filters."
)

in_range = breakdown.between(frame, f.start, f.end)
totals = breakdown.totals(in_range)
speed = data.latency(url, f, totals.calls)
row = st.columns(5)
row[0].metric("Cost in range", f"${totals.cost_usd:,.2f}")
row[1].metric("Calls", f"{totals.calls:,}")
row[2].metric("Error rate", f"{totals.error_rate:.2%}")
row[3].metric("p50 latency", "n/a" if speed.p50_ms is None else f"{speed.p50_ms:,.0f} ms")
row[4].metric("p95 latency", "n/a" if speed.p95_ms is None else f"{speed.p95_ms:,.0f} ms")
if not speed.exact:
    st.caption(f"Latency percentiles from a sample of {speed.sampled:,} calls of the range.")

if totals.unpriced_calls:
    st.warning(
        f"{totals.unpriced_calls:,} calls in this range are unpriced: their models are not in "
        "the price table, so their cost is unknown (not $0). Add their prices on the Pricing page."
    )

st.subheader("Daily cost by provider")
if in_range.empty:
    st.info("No calls in this range.")
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
    column.altair_chart(charts.cost_bars(table, group, top=8), width="stretch")
