"""The margins read from the store, on both stores: the per-term cost rows (a few per user)
attribute exactly as every user's every day would, and a hand-made case with a plan change."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import Engine, select

from dashboard import demo
from dashboard.account_edits import users_by_customer
from dashboard.accounts import load_accounts, write_plans, write_terms, write_users
from dashboard.economics import Plan, Term, attribute_costs, customer_margins
from dashboard.economics.attribution import _by_customer, _Customer
from dashboard.economics.calculators import MASK_WEEKS, cost_per_active_user_by_week
from dashboard.margin_data import (
    customer_detail,
    margins_report,
    term_cost_rows,
    top_spend,
    week_costs,
)
from tests.conftest import add_test_prices
from tests.test_margins import split_at_a_month
from tracking.events import CallEvent, uuid7
from tracking.schema import daily_user_rollups
from tracking.sqltypes import to_nanos
from tracking.store import write_batch


def every_day_rows(engine: Engine, start: date, end: date) -> list:
    r = daily_user_rollups.c
    query = select(r.user_id, r.day, r.cost_usd, r.unpriced_calls).where(
        r.day >= start, r.day <= end
    )
    with engine.connect() as conn:
        return [(u or None, d, to_nanos(c), int(n)) for u, d, c, n in conn.execute(query)]


def test_term_rows_attribute_as_every_day_would(engine: Engine, store_url: str) -> None:
    add_test_prices(store_url)
    end = date.today()
    demo.load(engine, calls=3_000, days=40, seed=11, end=datetime.now(UTC))
    start = end - timedelta(days=29)
    with engine.connect() as conn:
        accounts = load_accounts(conn)
        rows = term_cost_rows(conn, start, end)
        report = margins_report(conn, start, end, Decimal("2.9"), Decimal("1.5"))
    users: dict[str, list[str]] = {}
    for user, customer in accounts.users.items():
        users.setdefault(customer, []).append(user)
    full = every_day_rows(engine, start, end)
    assert len(rows) < len(full)  # fewer rows than user-days
    # both kinds of customer are here: all days owned by one span (a user's totals on
    # PostgreSQL) and several spans (summed by span)
    spans = {len(_Customer(ts, start, end).spans) for ts in _by_customer(accounts.terms).values()}
    assert 1 in spans and max(spans) > 1
    want = attribute_costs(full, users, accounts.terms, start, end)
    assert report.attribution == want
    lines = list(accounts.revenue.values())
    expected = customer_margins(
        accounts.terms, accounts.plans, want, start, end, lines, Decimal("2.9"), Decimal("1.5")
    )
    assert report.customers == expected
    assert any(m.margin < 0 for m in report.customers) or any(m.revenue for m in report.customers)


def test_weeks_are_those_of_every_user_day(engine: Engine, store_url: str) -> None:
    """The cost per active user by week equals ``cost_per_active_user_by_week`` over every
    user-day row, with calls without a user id apart: for the margins' period (week masks on
    PostgreSQL) and for a period longer than a mask holds (rows per user and week)."""
    add_test_prices(store_url)
    now = datetime.now(UTC)
    demo.load(engine, calls=2_000, days=40, seed=5, end=now)
    anonymous = [
        CallEvent(uuid7(), now - timedelta(days=d), "openai", "gpt-4o", input_tokens=1000,
                  cost_usd=Decimal("0.0125"), cost_source="provider")
        for d in (1, 9, 20)
    ] + [
        CallEvent(uuid7(), now - timedelta(days=2), "openai", "gpt-4o", input_tokens=1000)
    ]  # fmt: skip
    with engine.begin() as conn:
        write_batch(conn, anonymous)
    end = now.date()
    for start in (end - timedelta(days=29), end - timedelta(weeks=MASK_WEEKS + 2)):
        want = cost_per_active_user_by_week(every_day_rows(engine, start, end))
        with engine.connect() as conn:
            got = week_costs(conn, start, end)
            report = margins_report(conn, start, end)
        assert got == want and report.weeks == want
        assert sum(w.unattributed_cost for w in want) == Decimal("0.0375")
        assert sum(w.unattributed_unpriced_calls for w in want) == 1
        assert all(w.active_users for w in want)


def test_a_plan_change_mid_period_splits_the_cost_by_day(engine: Engine, store_url: str) -> None:
    add_test_prices(store_url)
    with engine.begin() as conn:
        write_plans(conn, [Plan("free", Decimal(0)), Plan("pro", Decimal(20))], "test", audit=False)
        terms = [
            Term("c1", "Acme", "free", date(2026, 3, 1), date(2026, 3, 14)),
            Term("c1", "Acme", "pro", date(2026, 3, 15)),
        ]
        write_terms(conn, terms, "test", audit=False)
        write_users(conn, {"u1": "c1"}, "test", audit=False)
        # $2.50 a day (1M input tokens) from Feb 27 to Mar 31; the two days before the first
        # term belong to no plan
        events = [
            CallEvent(uuid7(), datetime(2026, 2, 27, 12, tzinfo=UTC) + timedelta(days=i),
                      "openai", "gpt-4o", user_id="u1", input_tokens=10**6,
                      cost_usd=Decimal("2.5"), cost_source="provider")
            for i in range(33)
        ]  # fmt: skip
        write_batch(conn, events)
    with engine.connect() as conn:
        report = margins_report(conn, date(2026, 2, 27), date(2026, 3, 31))
        features = top_spend(conn, ["c1"], date(2026, 3, 1), date(2026, 3, 31), "model")
        by_day, by_feature = customer_detail(conn, "c1", date(2026, 3, 1), date(2026, 3, 31))
    (acme,) = report.customers
    # revenue: pro $20 for Mar 15..31 = 17/31 of a month = 10.967741935...
    assert acme.revenue == Decimal("10.967741935")
    assert acme.ai_cost == Decimal("77.5")  # 31 days of March at $2.50
    assert report.attribution.no_plan.cost == Decimal("5")  # Feb 27 and 28
    by_plan = report.attribution.by_plan["c1"]
    assert (by_plan["free"].cost, by_plan["pro"].cost) == (Decimal("35"), Decimal("42.5"))
    assert features == {"c1": [("openai/gpt-4o", Decimal("77.5"))]}
    assert len(by_day) == 31 and by_feature["cost"].sum() == Decimal("77.5")


def test_a_table_download_is_never_a_formula() -> None:
    import pandas as pd

    from dashboard.csv_export import frame_csv

    frame = pd.DataFrame(
        {
            "name": ['=HYPERLINK("x")', "+cmd", "@SUM(A1)", "\tx", "Acme"],
            "margin": ["-1.5", "2", "0", "-0.25", "3"],
        }
    )
    lines = frame_csv(frame).splitlines()
    assert lines[1:] == [
        '"\'=HYPERLINK(""x"")",-1.5',  # quoted by the CSV, the formula made text
        "'+cmd,2",
        "'@SUM(A1),0",
        "'\tx,-0.25",
        "Acme,3",
    ]


def test_one_span_books_equal_the_general_loop_on_demo_data(engine: Engine, store_url: str) -> None:
    """The one-span cache of ``customer_books`` (most demo customers) against its general loop,
    which the same terms cut at a month boundary take: every figure equal, to the nano."""
    add_test_prices(store_url)
    end = date.today()
    demo.load(engine, calls=2_000, days=70, seed=7, end=datetime.now(UTC))
    start = end - timedelta(days=59)
    with engine.connect() as conn:
        accounts = load_accounts(conn)
        rows = term_cost_rows(conn, start, end)
    users = users_by_customer(accounts.users)
    lines = list(accounts.revenue.values())
    split = split_at_a_month(accounts.terms, start, end)
    assert len(split) > len(accounts.terms)
    got, want = (
        customer_margins(
            ts,
            accounts.plans,
            attribute_costs(rows, users, ts, start, end),
            start,
            end,
            lines,
            Decimal("2.9"),
            Decimal("1.5"),
        )
        for ts in (accounts.terms, split)
    )
    assert got == want and len(got) > 10
