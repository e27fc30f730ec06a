"""The Users & margins page, rendered with AppTest from the entry script on both stores: the
figures it shows equal the margins computed from the store for the same period and costs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import Engine
from streamlit.testing.v1 import AppTest

from dashboard.economics import below_margin, margin_percentiles, margin_totals
from dashboard.formats import usd
from dashboard.margin_data import margins_report
from dashboard.margin_frames import customers_frame, plans_frame
from dashboard.margins_view import TAB_KEY
from dashboard.md_escape import md_plain
from tests.test_pricing_page import ENTRY, frame


def page() -> AppTest:
    at = AppTest.from_file(ENTRY, default_timeout=90).run()
    at.switch_page("../pages/users.py").run()
    assert not at.exception, at.exception
    return at


def open_tab(at: AppTest, label: str) -> AppTest:
    """Switch to a tab, as a click does: only the open tab's content runs."""
    at.session_state[TAB_KEY] = label
    at.run()
    assert not at.exception, at.exception
    return at


def expected(engine: Engine, fee: str = "2.9", infra: str = "0", target: str = "60"):
    today = datetime.now(UTC).date()
    with engine.connect() as conn:
        return margins_report(
            conn, today - timedelta(days=29), today, Decimal(fee), Decimal(infra), Decimal(target)
        )


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_the_page_shows_the_store_margins(demo_app_store: Engine) -> None:
    at = page()
    want = expected(demo_app_store)
    totals = margin_totals(want.customers)
    shown = metrics(at)
    assert shown["Customers"] == f"{totals.customers:,}" and totals.customers > 10
    assert shown["Revenue"] == usd(totals.revenue)
    assert shown["AI cost"] == usd(totals.ai_cost)
    assert shown["Margin"] == usd(totals.margin)
    spread = margin_percentiles(want.customers)
    assert shown["Margin per customer, p50 (median)"] == usd(spread.p50)
    table = frame(at, "active_days").sort_values("customer").reset_index(drop=True)
    mine = customers_frame(want.customers).drop(columns=["margin_usd"])
    assert table.to_dict("records") == mine.sort_values("customer").reset_index(drop=True).to_dict(
        "records"
    )
    assert not [f for f in at.dataframe if "break_even_price" in f.value.columns]  # a closed tab
    plans = frame(open_tab(at, "Plans"), "break_even_price")
    assert plans.to_dict("records") == plans_frame(want.plans).to_dict("records")


def test_costs_besides_ai_change_the_margins_shown(demo_app_store: Engine) -> None:
    at = page()
    at.text_input(key="margins.infra").input("1.5").run()
    at.text_input(key="margins.fee").input("5").run()
    want = expected(demo_app_store, fee="5", infra="1.5")
    assert metrics(at)["Margin"] == usd(margin_totals(want.customers).margin)
    at.text_input(key="margins.fee").input("lots").run()
    assert "Payment fee %: 'lots' is not a number" in [md_plain(e.value) for e in at.error]


def test_a_customer_below_target_is_listed_with_what_costs_it_most(demo_app_store: Engine) -> None:
    at = open_tab(page(), "Below target")
    want = expected(demo_app_store)
    low = below_margin(want.customers, Decimal(20))
    listed = frame(at, "top features")
    assert list(listed["customer"]) == [m.customer_id for m in low[:20]] and low
    costly = listed[listed["ai_cost"] != "0"].iloc[0]
    assert costly["top features"] and costly["top models"]


def test_the_calculator_prices_a_hypothetical_customer(demo_app_store: Engine) -> None:
    at = open_tab(page(), "Calculators")
    # 20 calls a day of 1,500 input and 400 output tokens of gpt-4o ($2.50 / $10 per 1M):
    # $0.00775 a call, x 20 x 365.25 / 12 = $4.7178125 a month
    assert metrics(at)["AI cost per month"] == usd(Decimal("4.7178125"))
    fits = frame(at, "margin_pct")
    assert "pro" in set(fits["plan"])


def _report_kept_then_forgotten() -> None:
    """AppTest runs this body as the script: the margins report twice, then after a write."""
    from datetime import date
    from decimal import Decimal

    import streamlit as st

    from dashboard import cache, margins_view
    from dashboard.db import store_url

    s = margins_view.Settings(
        date(2026, 1, 1), date(2026, 1, 31), Decimal(0), Decimal(0), Decimal(20), Decimal(60)
    )
    first = margins_view.report(store_url(), s)
    st.text(f"again {margins_view.report(store_url(), s) is first}")
    cache.forget()  # what every save calls
    st.text(f"after a write {margins_view.report(store_url(), s) is first}")


def test_the_margins_report_is_kept_whole_until_a_write(demo_app_store: Engine) -> None:
    """Kept as one object (not pickled in and out on each run, which cost most of a warm
    render at 20,000 customers), and forgotten by the saves' ``cache.forget``."""
    at = AppTest.from_function(_report_kept_then_forgotten, default_timeout=90).run()
    assert not at.exception, at.exception
    assert [t.value for t in at.text] == ["again True", "after a write False"]
