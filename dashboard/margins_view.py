"""The Users & margins page's sections: the period and cost settings, the totals and the
distribution of margin per customer, the customers below a margin with what costs them most,
one customer's detail, the plans, and the calculators. Widgets only: the figures come from
``margin_data`` (SQL) and ``economics`` (the calculations)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation

import altair as alt
import pandas as pd
import streamlit as st

from dashboard import cache, charts, margin_data
from dashboard.csv_export import frame_csv
from dashboard.db import engine
from dashboard.economics import (
    UsageLine,
    below_margin,
    lifetime_value,
    margin_percentiles,
    margin_totals,
    monthly_cost,
    plan_fits,
)
from dashboard.formats import plural, usd
from dashboard.margin_frames import customers_frame, money, plans_frame, top_text
from dashboard.md_escape import md_text
from tracking.pricing import load_price_book

TTL = 60
TAB_KEY = "margins.tab"  # session state: the label of the open tab
TABS = ("Margins", "Below target", "Customer", "Plans", "Calculators", "Plans & customers (edit)")


@dataclass(frozen=True)
class Settings:
    start: date
    end: date
    fee_pct: Decimal
    infra: Decimal
    below_pct: Decimal
    target_pct: Decimal


def _decimal(label: str, default: str, key: str, help: str) -> Decimal | None:
    text = st.text_input(label, value=default, key=key, help=help)
    try:
        value = Decimal(text.strip() or "0")
    except InvalidOperation:
        st.error(f"{label}: {md_text(repr(text))} is not a number")
        return None
    if not value.is_finite() or value < 0:
        st.error(f"{label}: give 0 or more")
        return None
    return value


def settings(today: date) -> Settings | None:
    """The period and the costs besides AI that a margin takes off; None while one is bad
    (the error says which)."""
    cols = st.columns([2, 1, 1, 1, 1])
    chosen = cols[0].date_input(
        "Period (UTC days)", value=(today - timedelta(days=29), today), key="margins.period"
    )
    if not isinstance(chosen, tuple) or len(chosen) != 2:
        st.info("Pick the last day of the period too.")
        return None
    with cols[1]:
        fee = _decimal("Payment fee %", "2.9", "margins.fee", "taken off each customer's revenue")
    with cols[2]:
        infra = _decimal(
            "Infra $ per customer-month", "0", "margins.infra", "prorated by days active"
        )
    with cols[3]:
        below = _decimal("Flag margins below %", "20", "margins.below", "customers listed")
    with cols[4]:
        target = _decimal("Target margin %", "60", "margins.target", "the price plans need")
    if fee is None or infra is None or below is None or target is None:
        return None
    if fee >= 100 or target >= 100:
        st.error("A fee or a target margin of 100% or more leaves no price that works.")
        return None
    return Settings(chosen[0], chosen[1], fee, infra, below, target)


@cache.kept(ttl=TTL, show_spinner="Computing margins…")
def report(url: str, s: Settings) -> margin_data.MarginsReport:
    with engine(url).connect() as conn:
        return margin_data.margins_report(conn, s.start, s.end, s.fee_pct, s.infra, s.target_pct)


@st.cache_data(ttl=TTL, show_spinner=False)
def top_spend(url: str, ids: tuple[str, ...], start: date, end: date, by: str) -> dict:
    with engine(url).connect() as conn:
        return margin_data.top_spend(conn, ids, start, end, by)


def totals_section(r: margin_data.MarginsReport) -> None:
    t = margin_totals(r.customers)
    cols = st.columns(5)
    cols[0].metric("Customers", f"{t.customers:,}")
    cols[1].metric("Revenue", usd(t.revenue))
    cols[2].metric("AI cost", usd(t.ai_cost))
    cols[3].metric("Margin", usd(t.margin))
    cols[4].metric("Margin %", "n/a" if t.margin_pct is None else f"{t.margin_pct}%")
    notes = []
    if t.unpriced_calls:
        notes.append(
            f"AI cost leaves out {plural(t.unpriced_calls, 'unpriced call')} (cost unknown, "
            "not $0: price them on the Pricing page)."
        )
    outside = r.attribution.no_plan
    if outside.cost or outside.unpriced_calls:
        notes.append(
            f"{usd(outside.cost)} of AI cost is outside every customer's term ("
            f"{plural(r.attribution.no_plan_users, 'user')} with no plan then, or none at all)"
            + (
                f", plus {plural(outside.unpriced_calls, 'unpriced call')}."
                if outside.unpriced_calls
                else "."
            )
        )
    for note in notes:
        st.caption(note)


def distribution_section(r: margin_data.MarginsReport) -> None:
    frame = customers_frame(r.customers)
    if frame.empty:
        st.info("No customers in this period: add plans and customers below, or import them.")
        return
    spread = margin_percentiles(r.customers)
    cols = st.columns(3)
    for col, label, value in zip(
        cols, ("p10", "p50 (median)", "p90"), spread.__dict__.values(), strict=True
    ):
        col.metric(f"Margin per customer, {label}", "n/a" if value is None else usd(value))
    st.altair_chart(charts.margin_histogram(frame["margin_usd"]), width="stretch")
    st.dataframe(
        frame.drop(columns=["margin_usd"]).sort_values(
            "margin", key=lambda s: frame.loc[s.index, "margin_usd"]
        ),
        hide_index=True,
    )
    st.download_button(
        "Download customers (CSV)",
        lambda: frame_csv(frame.drop(columns=["margin_usd"])),
        f"margins_{r.start}_{r.end}.csv",
        "text/csv",
        key="margins.customers_csv",
    )


def below_section(url: str, r: margin_data.MarginsReport, pct: Decimal) -> None:
    low = below_margin(r.customers, pct)
    if not low:
        st.success(f"No customer below {pct}% margin in this period.")
        return
    negative = sum(1 for m in low if m.margin < 0)
    st.warning(
        f"{plural(len(low), 'customer')} below {pct}% margin ({negative:,} below zero); the "
        "worst 20 with the features and models that cost them most:"
    )
    worst = low[:20]
    ids = tuple(m.customer_id for m in worst)
    features = top_spend(url, ids, r.start, r.end, "feature")
    models = top_spend(url, ids, r.start, r.end, "model")
    frame = customers_frame(worst)[
        ["customer", "name", "plan", "revenue", "ai_cost", "margin", "margin_pct"]
    ]
    frame["top features"] = [top_text(features, i) for i in ids]
    frame["top models"] = [top_text(models, i) for i in ids]
    st.dataframe(frame, hide_index=True)
    download(frame, f"below_{pct}pct_{r.start}_{r.end}.csv", "margins.below_csv")


def download(frame: pd.DataFrame, name: str, key: str) -> None:
    """The table shown, as CSV (exact decimals as text; never a formula), made only when
    downloaded: at 20,000 customers making it on every run cost a fifth of the render."""
    st.download_button("Download CSV", lambda: frame_csv(frame), name, "text/csv", key=key)


def detail_section(url: str, r: margin_data.MarginsReport) -> None:
    if not r.customers:
        return
    names = {m.customer_id: f"{m.customer_id} ({m.name})" for m in r.customers}
    chosen = st.selectbox("Customer", list(names), format_func=names.get, key="margins.customer")
    if chosen is None:
        return
    mine = next(m for m in r.customers if m.customer_id == chosen)
    users = sorted(u for u, c in r.accounts.users.items() if c == chosen)
    terms = [t for t in r.accounts.terms if t.customer_id == chosen]
    cols = st.columns(4)
    cols[0].metric("Its revenue", usd(mine.revenue))
    cols[1].metric("Its AI cost", usd(mine.ai_cost))
    cols[2].metric("Its margin", usd(mine.margin))
    cols[3].metric("Its users", f"{len(users):,}")
    shown = ", ".join(md_text(u) for u in users[:50]) or "none"
    st.caption("Users: " + shown + (" …" if len(users) > 50 else ""))
    st.dataframe(
        pd.DataFrame(
            [
                (
                    t.plan or "no plan",
                    t.start,
                    t.end,
                    t.seats,
                    str(t.discount_pct),
                    money(t.custom_price),
                )
                for t in terms
            ],
            columns=["plan", "start", "end", "seats", "discount %", "custom price"],
        ),
        hide_index=True,
    )
    with engine(url).connect() as conn:
        by_day, by_feature = margin_data.customer_detail(conn, chosen, r.start, r.end)
    if not by_day.empty:
        chart = (
            alt.Chart(by_day)
            .mark_bar()
            .encode(
                x=alt.X("day:T", title="Day"),
                y=alt.Y("dollars:Q", title="AI cost ($)"),
                tooltip=["day:T", alt.Tooltip("dollars:Q", format="$,.4~f"), "calls:Q"],
            )
            .properties(height=200)
        )
        st.altair_chart(chart, width="stretch")
    features = by_feature.assign(cost=by_feature["cost"].map(money)).drop(columns=["dollars"])
    st.dataframe(features, hide_index=True)
    download(features, f"{chosen}_features_{r.start}_{r.end}.csv", "margins.detail_csv")
    lines = [x for x in r.accounts.revenue.values() if x.customer_id == chosen]
    if lines:
        st.dataframe(
            pd.DataFrame(
                [(x.start, x.end, money(x.amount), x.note or "") for x in lines],
                columns=["from", "to", "amount", "note"],
            ),
            hide_index=True,
        )


def plans_section(r: margin_data.MarginsReport, target: Decimal) -> None:
    frame = plans_frame(r.plans)
    if frame.empty:
        st.info("No plan has customers in this period.")
        return
    st.caption(
        "Per plan: active customers, AI cost per active customer (average and p90), gross "
        "margin, the share of the included allowance used, the break-even price per seat and "
        f"month, the share of customers above it, and the price that reaches {target}% margin."
    )
    st.dataframe(frame, hide_index=True)
    st.download_button(
        "Download plans (CSV)",
        lambda: frame_csv(frame),
        f"plans_{r.start}_{r.end}.csv",
        "text/csv",
        key="margins.plans_csv",
    )


DEFAULT_USAGE = pd.DataFrame(
    [("chat", "openai", "gpt-4o", 20.0, 1500, 400, 0)],
    columns=[
        "feature",
        "provider",
        "model",
        "calls_per_day",
        "input_tokens",
        "output_tokens",
        "cached_input_tokens",
    ],
)


def calculators_section(url: str, r: margin_data.MarginsReport, s: Settings) -> None:
    st.markdown("**A hypothetical customer**: its usage per feature, priced with today's prices.")
    usage = st.data_editor(DEFAULT_USAGE, num_rows="dynamic", hide_index=True, key="margins.usage")
    seats = st.number_input("Seats", min_value=1, value=1, step=1, key="margins.seats")
    lines = []
    for row in usage.itertuples():
        try:
            lines.append(
                UsageLine(
                    str(row.feature),
                    str(row.model),
                    str(row.provider),
                    Decimal(str(row.calls_per_day)),
                    int(row.input_tokens),
                    int(row.output_tokens),
                    int(row.cached_input_tokens or 0),
                )
            )
        except (ValueError, TypeError, InvalidOperation):
            st.error(f"Row {row.Index + 1}: calls per day and token counts must be numbers")
            return
    with engine(url).connect() as conn:
        book = load_price_book(conn)
    try:
        estimate = monthly_cost(lines, book, datetime.now(UTC))
    except ValueError as exc:
        st.error(md_text(exc))
        return
    st.metric("AI cost per month", usd(estimate.total))
    if estimate.unpriced:
        st.warning(
            "Unpriced (left out, not $0): "
            + ", ".join(md_text(f"{e.line.provider}/{e.line.model}") for e in estimate.unpriced)
        )
    fits = plan_fits(estimate, r.accounts.plans, int(seats), s.fee_pct, s.infra)
    st.dataframe(
        pd.DataFrame(
            [
                (f.plan, money(f.revenue), money(f.ai_cost), money(f.margin), money(f.margin_pct))
                for f in fits
            ],
            columns=["plan", "revenue", "ai_cost", "margin", "margin_pct"],
        ),
        hide_index=True,
    )
    st.markdown("**Lifetime value** from a monthly margin and churn.")
    left, right = st.columns(2)
    margin_text = left.text_input("Monthly margin ($)", value="10", key="margins.ltv_margin")
    churn_text = right.text_input("Monthly churn %", value="5", key="margins.ltv_churn")
    try:
        ltv = lifetime_value(Decimal(margin_text), Decimal(churn_text))
    except (InvalidOperation, ValueError) as exc:
        st.error(
            f"Lifetime value: {md_text(exc)}" if isinstance(exc, ValueError) else "give numbers"
        )
        return
    st.metric("Lifetime value", ltv.reason or usd(ltv.value or Decimal(0)))
    st.markdown("**AI cost per active user, by ISO week** (active: calls that week).")
    weeks = r.weeks
    st.dataframe(
        pd.DataFrame(
            [
                (w.monday, w.active_users, money(w.cost), money(w.cost_per_user), w.unpriced_calls)
                for w in weeks
            ],
            columns=["week of", "active users", "cost", "cost per user", "unpriced calls"],
        ),
        hide_index=True,
    )
