"""The accounts tab (dashboard.accounts_view) rendered with AppTest on both stores: edits driven
through the data editors' session state, each kind of bad cell named with nothing saved, rows
deleted in a table refused, CSV imports (bad rows by line, a good one's counts, the Stripe
preset) and the read-only shared store, asserting what the tab shows and what the store holds."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pandas as pd
import pytest
from sqlalchemy import Engine, func, select
from streamlit.testing.v1 import AppTest

from dashboard.access import Access, hash_password
from dashboard.accounts import (
    load_plans,
    load_revenue,
    load_terms,
    load_users,
    write_terms,
    write_users,
)
from dashboard.economics import Plan, Term
from tests.test_pricing_page import edit_table, who
from tracking.schema import audit_log, customer_users, customers, plans, revenue

PASSWORD = "pw"
PASSWORD_SECRETS = {"unitwise": {"editor_password_hash": hash_password(PASSWORD, n=2**10)}}
TABLES = (plans, customers, customer_users, revenue, audit_log)
TEAM = "team_zz"  # a team of the tests' own: the demo's teams change with the hour it is made
TEAM_USERS = "zz_1; zz_2; zz_3"


def _tab() -> None:
    """The tab as the Users & margins page renders it (AppTest runs this function's body as
    the script), with a cached read beside it: a save must forget it."""
    import time

    import streamlit as st

    from dashboard import db
    from dashboard.access import editor_access, sign_in
    from dashboard.accounts_view import accounts_section

    @st.cache_data
    def cached_stamp() -> int:
        return time.perf_counter_ns()

    url = db.store_url()
    access = editor_access(url)
    sign_in(access)
    st.text(f"cached {cached_stamp()}")
    accounts_section(url, access)


def tab(
    engine: Engine, editor: bool = True, secrets: dict | None = None, team: bool = True
) -> AppTest:
    """The tab on the demo store, with the tests' own team unless ``team`` is False; on
    PostgreSQL signed in with the editor password unless ``editor`` is False (the embedded
    SQLite store is editable as it is)."""
    if team:  # the team the tests edit, the same whatever the hour the demo was made at
        with engine.begin() as conn:
            term = Term(TEAM, "ZZ Team", "team", date(2025, 1, 1), None, 3)
            write_terms(conn, [term], "test", audit=False)
            write_users(conn, dict.fromkeys(TEAM_USERS.split("; "), TEAM), "test", audit=False)
    return _open(engine, editor, secrets)


def _open(engine: Engine, editor: bool, secrets: dict | None) -> AppTest:
    shared = engine.dialect.name != "sqlite"
    at = AppTest.from_function(_tab, default_timeout=90)
    for name, value in (secrets or (PASSWORD_SECRETS if shared else {})).items():
        at.secrets[name] = value
    at.run()
    assert not at.exception, at.exception
    if shared and editor:
        next(t for t in at.text_input if t.label == "Editor password").input(PASSWORD)
        next(b for b in at.button if b.label == "Sign in to edit").click().run()
        assert not at.exception, at.exception
    return at


def edit(at: AppTest, kind: str, edited_rows=None, added_rows=(), deleted_rows=()) -> AppTest:
    edit_table(at, editor_key(at, kind), edited_rows, added_rows, deleted_rows)
    assert not at.exception, at.exception
    return at


def editor_key(at: AppTest, kind: str) -> str:
    generation = f"accounts.{kind}.generation"
    n = at.session_state.get(generation, 0)
    return f"accounts.{kind}.editor" + (f".{n}" if n else "")


def click(at: AppTest, key: str) -> AppTest:
    at.button(key=key).click().run()
    assert not at.exception, at.exception
    return at


def save(at: AppTest, kind: str) -> AppTest:
    return click(at, f"accounts.{kind}.save")


def frame(at: AppTest, column: str) -> pd.DataFrame:
    """The first table on the tab with this column (AppTest's tables carry no key)."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


def problems(at: AppTest) -> list[str]:
    """The problems table of a refused save, one line per problem."""
    table = frame(at, "Problem")
    return [
        f"Row {r.Row}, {r.Column}: {r.Problem}" if not pd.isna(r.Row) else str(r.Problem)
        for r in table.itertuples()
    ]


def row_of(at: AppTest, table: str, column: str, value: str) -> int:
    """The 0-based row of the table with a ``table`` column holding ``value`` in ``column``."""
    shown = frame(at, table).reset_index(drop=True)
    return int(shown.index[shown[column] == value][0])


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            t.name: conn.execute(select(func.count()).select_from(t)).scalar_one() for t in TABLES
        }


def audit_rows(engine: Engine) -> list:
    with engine.connect() as conn:
        return list(conn.execute(select(audit_log).order_by(audit_log.c.id)))


def cached(at: AppTest) -> str:
    return next(t.value for t in at.text if t.value.startswith("cached "))


def can_save(at: AppTest) -> bool:
    return any(str(b.key).endswith(".save") for b in at.button)


# --- the editors --------------------------------------------------------------------------------


def test_a_valid_plan_edit_saves_with_an_audit_row(demo_app_store: Engine) -> None:
    at = tab(demo_app_store)
    shown = frame(at, "period")
    assert list(shown["name"]) == ["free", "pro", "starter", "team"]
    before, stamp = counts(demo_app_store), cached(at)
    pro = row_of(at, "period", "name", "pro")
    added = {"name": "scale", "price": "$1,299.50", "period": "year", "included_usage": "250"}
    edit(at, "plans", {pro: {"price": "24.50"}}, [added])
    at.text_input(key="accounts.plans.note").input("spring prices").run()
    assert cached(at) == stamp  # nothing saved yet: the cache stands
    save(at, "plans")
    assert "Saved plans: 1 added, 1 changed." in texts(at.success), texts(at.error)
    with demo_app_store.connect() as conn:
        stored = load_plans(conn)
    assert stored["pro"].price == Decimal("24.50")
    assert stored["scale"] == Plan("scale", Decimal("1299.50"), "year", Decimal(250))
    entries = audit_rows(demo_app_store)
    assert counts(demo_app_store)["audit_log"] == before["audit_log"] + 2
    assert [(e.action, e.table_name, e.key) for e in entries[-2:]] == [
        ("add", "plans", "scale"),
        ("edit", "plans", "pro"),
    ]
    assert {e.who for e in entries[-2:]} == {who(demo_app_store)}
    assert {e.note for e in entries[-2:]} == {"spring prices"}
    assert (entries[-1].before["price"], entries[-1].after["price"]) == ("20", "24.5")
    assert cached(at) != stamp  # the write forgot the cached reads
    # the table starts again from the store, the edits gone
    assert frame(at, "period").set_index("name").loc["pro", "price"] == "24.5"
    assert not at.session_state[editor_key(at, "plans")]["edited_rows"]


def test_customers_and_revenue_save_added_and_changed_rows(demo_app_store: Engine) -> None:
    at = tab(demo_app_store)
    with demo_app_store.connect() as conn:
        users_before = load_users(conn)
    team = row_of(at, "users", "users", TEAM_USERS)
    new_term = {"customer_id": "acme", "start": "2026-03-01", "name": "Acme <b>Inc</b>",
                "plan": "team", "seats": 3, "discount_pct": "10"}  # fmt: skip
    # a seat's user id moves from the team to acme; the team gets two seats
    edit(
        at,
        "customers",
        {team: {"users": "zz_1; zz_2", "seats": 2}},
        [new_term | {"users": "acme_1; acme_2; zz_3"}],
    )
    save(at, "customers")
    assert "Saved customer terms: 1 added, 1 changed; user ids: 2 added, 1 changed." in texts(
        at.success
    ), texts(at.error) + str(problems(at) if at.error else "")
    with demo_app_store.connect() as conn:
        terms = {(t.customer_id, t.start): t for t in load_terms(conn)}
        users = load_users(conn)
    acme = terms[("acme", date(2026, 3, 1))]
    assert (acme.name, acme.plan, acme.seats, acme.discount_pct) == (
        "Acme <b>Inc</b>",
        "team",
        3,
        Decimal(10),
    )
    assert users == users_before | {"acme_1": "acme", "acme_2": "acme", "zz_3": "acme"}
    # a revenue line for the new customer, its id made from the row
    line = {"customer_id": "acme", "start": "2026-03-01", "end": "2026-03-31",
            "amount": "120.000000001", "note": "overage"}  # fmt: skip
    edit(at, "revenue", added_rows=[line])
    save(at, "revenue")
    assert "Saved revenue lines: 1 added, 0 changed." in texts(at.success)
    with demo_app_store.connect() as conn:
        stored = load_revenue(conn)["acme:2026-03-01:2026-03-31:overage"]
    assert stored.amount == Decimal("120.000000001")
    assert {e.who for e in audit_rows(demo_app_store)} == {who(demo_app_store)}


def _plans(at: AppTest) -> tuple[int, int]:
    return row_of(at, "period", "name", "pro"), len(frame(at, "period"))


def _terms(at: AppTest) -> tuple[int, int]:
    return row_of(at, "users", "users", TEAM_USERS), len(frame(at, "users"))


# (kind, edited row's cells, added row, expected problem: the row ("edited" or "added") and
# the rest of the line)
BAD_CELLS = [
    ("plans", {"price": "ten"}, None, ("edited", "Price ($): 'ten' is not an amount of dollars")),
    ("plans", {"price": "-5"}, None, ("edited", "Price ($): -5 is negative")),
    ("plans", {"price": "0.0000000001"}, None, ("edited", "Price ($): 0.0000000001 is finer")),
    ("plans", {"period": "weekly"}, None, ("edited", "Period: 'weekly' is not month or year")),
    (
        "plans",
        {"active_from": "2026-05-01", "active_to": "2026-04-01"},
        None,
        ("edited", "Offered until: 2026-04-01 is before the day it is offered from"),
    ),
    ("plans", {"active_to": "soon"}, None, ("edited", "Offered until: 'soon' is not a date")),
    ("plans", {"name": "pro-2"}, None, ("edited", "Name: the name of a stored row cannot be")),
    ("plans", {}, {"name": "pro", "price": "1"}, ("added", "Name: plan 'pro' is on row")),
    ("plans", {}, {"name": "gold"}, ("added", "Price ($): a price is needed")),
    ("plans", {}, {"price": "5"}, ("added", "Name: a plan's name is needed")),
    ("customers", {"seats": 0}, None, ("edited", "Seats: seats 0 is not a whole number")),
    ("customers", {"discount_pct": "150"}, None, ("edited", "Discount (%): discount 150 is")),
    ("customers", {"plan": "enterprise"}, None, ("edited", "Plan: unknown plan 'enterprise'")),
    ("customers", {"end": "2020-01-01"}, None, ("edited", "End: 2020-01-01 is before the term")),
    ("customers", {"custom_price": "1e3"}, None, ("edited", "Custom price ($/month): '1e3'")),
    ("customers", {"start": "2020-01-01"}, None, ("edited", "Start: the start of a stored row")),
    (
        "customers",
        {"users": "zz_1; zz_2"},
        None,
        ("edited", "User ids: 'zz_3' taken off 'team_zz' and given to no other customer"),
    ),
    (
        "customers",
        {"users": "zz_1; zz_2; zz_3; user_0000"},
        None,
        ("edited", "User ids: user id 'user_0000' is listed under two customers"),
    ),
    (
        "customers",
        {},
        {"customer_id": "solo", "start": "2026-01-01", "plan": None},
        ("added", "Plan: a plan or a custom price is needed"),
    ),
    (
        "revenue",
        {},
        {"customer_id": "nobody", "start": "2026-01-01", "end": "2026-01-31", "amount": "5"},
        ("added", "Customer id: unknown customer 'nobody'"),
    ),
    (
        "revenue",
        {},
        {"customer_id": TEAM, "start": "2026-01-01", "end": "2026-01-31", "amount": "5,00"},
        ("added", "Amount ($): '5,00' is not an amount of dollars"),
    ),
    (
        "revenue",
        {},
        {"customer_id": TEAM, "start": "2026-02-01", "end": "2026-01-31", "amount": "5"},
        ("added", "To: 2026-01-31 is before the first day it pays for"),
    ),
]


@pytest.mark.parametrize(("kind", "cells", "added", "expected"), BAD_CELLS)
def test_each_bad_cell_is_named_and_nothing_is_saved(
    demo_app_store: Engine, kind: str, cells: dict, added: dict | None, expected: tuple
) -> None:
    at = tab(demo_app_store)
    before, stamp = counts(demo_app_store), cached(at)
    if kind == "plans":
        row, size = _plans(at)
    elif kind == "customers":
        row, size = _terms(at)
    else:
        row, size = 0, len(frame(at, "amount"))
    edit(at, kind, {row: cells} if cells else None, [added] if added else [])
    save(at, kind)
    assert "Nothing was saved" in texts(at.error), texts(at.success)
    which, rest = expected
    number = row + 1 if which == "edited" else size + 1
    assert any(p.startswith(f"Row {number}, {rest}") for p in problems(at)), problems(at)
    assert counts(demo_app_store) == before
    assert cached(at) == stamp
    # the edits stay in the table, to be fixed
    assert at.session_state[editor_key(at, kind)] == {
        "edited_rows": {row: cells} if cells else {},
        "added_rows": [added] if added else [],
        "deleted_rows": [],
    }


def test_one_bad_cell_keeps_the_good_ones_from_being_saved(demo_app_store: Engine) -> None:
    at = tab(demo_app_store)
    before = counts(demo_app_store)
    pro, size = _plans(at)
    edit(at, "plans", {pro: {"price": "25"}, 0: {"price": "abc"}}, [{"name": "x", "price": "-1"}])
    save(at, "plans")
    found = problems(at)
    assert len(found) == 2 and found[0].startswith("Row 1, Price ($): 'abc'"), found
    assert found[1].startswith(f"Row {size + 1}, Price ($): -1 is negative"), found
    assert counts(demo_app_store) == before
    with demo_app_store.connect() as conn:
        assert load_plans(conn)["pro"].price == Decimal(20)


def test_a_deleted_row_is_refused_not_dropped_and_discard_brings_it_back(
    demo_app_store: Engine,
) -> None:
    at = tab(demo_app_store)
    assert "Deleting a row here deletes nothing from the store" in texts(at.caption)
    before = counts(demo_app_store)
    starter = row_of(at, "period", "name", "starter")
    edit(at, "plans", {0: {"price": "1"}}, deleted_rows=[starter])
    save(at, "plans")
    (problem,) = problems(at)
    assert problem.startswith(f"Row {starter + 1}, : deleted, but rows are not deleted"), problem
    assert "plan 'starter'" in set(frame(at, "Problem")["Of"])
    assert counts(demo_app_store) == before
    with demo_app_store.connect() as conn:
        assert "starter" in load_plans(conn) and load_plans(conn)["free"].price == 0
    old_key = editor_key(at, "plans")
    click(at, "accounts.plans.discard")
    assert editor_key(at, "plans") != old_key  # a new table in the browser too
    assert "starter" in set(frame(at, "period")["name"])
    assert not any(b.key == "accounts.plans.discard" for b in at.button)  # nothing pending


def test_a_row_someone_else_saved_since_is_a_conflict(demo_app_store: Engine) -> None:
    bob = tab(demo_app_store)
    alice = tab(demo_app_store)
    edit(bob, "plans", {_plans(bob)[0]: {"price": "30"}})  # bob begins on pro
    edit(alice, "plans", {_plans(alice)[0]: {"price": "22"}})
    assert "Saved plans: 0 added, 1 changed." in texts(save(alice, "plans").success)
    save(bob, "plans")
    assert "someone else saved some of these rows since you began" in texts(bob.error)
    assert problems(bob) == ["plan 'pro' was changed by someone else since you began"]
    with demo_app_store.connect() as conn:
        assert load_plans(conn)["pro"].price == Decimal(22)  # alice's stands


def test_saving_leaves_the_rows_someone_else_saved_alone(demo_app_store: Engine) -> None:
    bob = tab(demo_app_store)
    alice = tab(demo_app_store)
    edit(bob, "plans", {_plans(bob)[0]: {"price": "30"}})  # bob begins on pro
    team = row_of(alice, "period", "name", "team")
    edit(alice, "plans", {team: {"price": "33"}})
    assert "Saved plans: 0 added, 1 changed." in texts(save(alice, "plans").success)
    # bob's table still shows team at $30, as it was when he began: saving does not put it back
    assert "Saved plans: 0 added, 1 changed." in texts(save(bob, "plans").success)
    with demo_app_store.connect() as conn:
        stored = load_plans(conn)
    assert (stored["pro"].price, stored["team"].price) == (Decimal(30), Decimal(33))


# --- the CSV import -----------------------------------------------------------------------------

PLANS_CSV = "\n".join(
    [
        "plan,price,interval,included",
        "pro,25.00,month,10",  # line 2: changes pro
        "gold,ten dollars,month,",  # line 3: bad amount
        "silver,15,month,5",  # line 4: a new plan
        'hostile,5,fortnight,"<img src=x onerror=alert(1)>"',  # line 5: bad period and usage
        "pro,26,month,10",  # line 6: pro again
    ]
)


def paste(at: AppTest, kind: str, text: str) -> AppTest:
    at.radio(key="accounts.import.kind").set_value(kind).run()
    at.text_area(key="accounts.import.paste").input(text).run()
    assert not at.exception, at.exception
    return at


def preview(at: AppTest) -> AppTest:
    return click(at, "accounts.import.preview")


def test_an_import_with_bad_rows_lists_them_by_line_and_writes_nothing(
    demo_app_store: Engine,
) -> None:
    at = tab(demo_app_store)
    before = counts(demo_app_store)
    preview(paste(at, "plans", PLANS_CSV))
    assert "Nothing can be imported yet: 3 bad rows (of 5 rows read)" in texts(at.error)
    bad = frame(at, "Reason")
    reasons = dict(zip(bad["Line"], bad["Reason"], strict=True))
    assert set(reasons) == {3, 5, 6}
    assert "malformed amount in price: 'ten dollars'" in reasons[3]
    assert "period not month or year: 'fortnight'" in reasons[5]
    assert "malformed amount in included_usage: '<img src=x onerror=alert(1)>'" in reasons[5]
    assert "duplicate id: plan 'pro' is on line 2 too" in reasons[6]
    assert not any(b.key == "accounts.import.run" for b in at.button)
    assert counts(demo_app_store) == before
    # the hostile cell is only ever shown as a table's text
    shown = [e for e in (*at.markdown, *at.error, *at.info, *at.caption, *at.success)]
    assert not any("onerror" in str(e.value) for e in shown)


def test_a_good_import_says_what_it_added_and_changed(demo_app_store: Engine) -> None:
    at = tab(demo_app_store)
    good = "\n".join(PLANS_CSV.splitlines()[i] for i in (0, 1, 3))
    preview(paste(at, "plans", good))
    assert "Importing would write plans: 1 to add, 1 to change." in texts(at.info), texts(at.error)
    rows = frame(at, "import")
    assert dict(zip(rows["name"], rows["import"], strict=True)) == {
        "pro": "change",
        "silver": "add",
    }
    at.text_input(key="accounts.import.note").input("from the price sheet").run()
    click(at, "accounts.import.run")
    assert "Imported plans: 1 added, 1 changed." in texts(at.success), texts(at.error)
    with demo_app_store.connect() as conn:
        stored = load_plans(conn)
    assert stored["pro"].price == Decimal(25) and stored["silver"] == Plan(
        "silver", Decimal(15), "month", Decimal(5)
    )
    entries = [e for e in audit_rows(demo_app_store) if e.table_name == "plans"]
    assert [(e.action, e.key, e.who, e.note) for e in entries] == [
        ("add", "silver", who(demo_app_store), "from the price sheet"),
        ("edit", "pro", who(demo_app_store), "from the price sheet"),
    ]
    # the plans table shows them
    assert {"pro", "silver"} <= set(frame(at, "period")["name"])
    # importing it again adds and changes nothing
    preview(paste(at, "plans", good + "\n"))
    assert "plans: 0 to add, 0 to change, 2 the same." in texts(at.info)


def test_a_changed_mapping_is_used_and_calls_for_a_new_preview(demo_app_store: Engine) -> None:
    at = tab(demo_app_store)
    text = "tier,cost,notes\ngold,40,\n"
    paste(at, "plans", text)
    name = next(s for s in at.selectbox if s.label == "name (required)")
    assert name.value is None  # no column is named like it: the CSV cannot be read yet
    preview(at)
    assert "no column for the required field name (map one)" in set(frame(at, "Reason")["Reason"])
    name.set_value("tier").run()
    next(s for s in at.selectbox if s.label == "price (required)").set_value("cost").run()
    assert "changed since the preview: preview again" in texts(at.caption)
    preview(at)
    assert "plans: 1 to add, 0 to change" in texts(at.info), texts(at.error)
    click(at, "accounts.import.run")
    with demo_app_store.connect() as conn:
        assert load_plans(conn)["gold"].price == Decimal(40)


# A Stripe Dashboard subscriptions export, trimmed to three rows and a few of its columns.
STRIPE_EXPORT = "\ufeff" + "\r\n".join(
    [
        "id,Customer ID,Customer Name,Customer Email,Plan,Quantity,Currency,Interval,Amount,"
        "Status,Created (UTC),Start (UTC),Current Period Start (UTC),Current Period End (UTC),"
        "Canceled At (UTC),Ended At (UTC),users (metadata)",
        "sub_1,cus_S1,Ada Ltd,ada@example.com,pro,1,usd,month,20.00,active,2026-01-03 10:00,"
        "2026-01-03 10:00,2026-11-03 10:00,2026-12-03 10:00,,,s1_a",
        "sub_2,cus_S2,,ops@globex.example,team,2,usd,month,25.00,canceled,2025-11-01 08:00,"
        "2025-11-01 08:00,2026-04-01 08:00,2026-05-01 08:00,2026-04-20 09:00,2026-05-01 08:00,"
        "s2_a;s2_b",
        "sub_3,cus_S3,Yearly,y@example.com,pro,1,usd,year,240.00,trialing,2026-10-01 12:00,"
        "2026-10-01 12:00,2026-10-01 12:00,2027-10-01 12:00,,,",
    ]
)


def test_the_stripe_preset_maps_a_subscriptions_export(demo_app_store: Engine) -> None:
    at = tab(demo_app_store)
    at.radio(key="accounts.import.kind").set_value("customers").run()
    at.selectbox(key="accounts.import.preset.customers").set_value("stripe_subscriptions").run()
    uploader = at.file_uploader(key="accounts.import.file")
    uploader.set_value(("subscriptions.csv", STRIPE_EXPORT.encode(), "text/csv"))
    at.run()
    assert not at.exception, at.exception
    chosen = {s.label.removesuffix(" (required)"): s.value for s in at.selectbox if s.key}
    assert {k: chosen[k] for k in ("customer_id", "start", "name", "end", "users")} == {
        "customer_id": "Customer ID",
        "start": "Start (UTC)",
        "name": "Customer Name",
        "end": "Ended At (UTC)",
        "users": "users (metadata)",
    }
    preview(at)
    assert "customer terms: 3 to add, 0 to change; user ids: 3 to add" in texts(at.info), texts(
        at.error
    ) + str(frame(at, "Reason") if at.error else "")
    read = frame(at, "Field").set_index("Field")
    # the preset's fallbacks stay: a blank name is read from the e-mail
    assert read.loc["name"].iloc[0] == "Customer Name, Customer Email"
    click(at, "accounts.import.run")
    assert "Imported customer terms: 3 added, 0 changed; user ids: 3 added, 0 changed." in texts(
        at.success
    )
    with demo_app_store.connect() as conn:
        terms = {t.customer_id: t for t in load_terms(conn, ["cus_S1", "cus_S2", "cus_S3"])}
        users = load_users(conn)
    assert (terms["cus_S1"].name, terms["cus_S1"].plan, terms["cus_S1"].custom_price) == (
        "Ada Ltd",
        "pro",
        None,
    )
    s2 = terms["cus_S2"]
    assert (s2.name, s2.start, s2.end, s2.seats, s2.custom_price) == (
        "ops@globex.example",
        date(2025, 11, 1),
        date(2026, 5, 1),
        2,
        Decimal(50),  # $25 a seat, not the plan's $30: a custom price for both seats
    )
    assert terms["cus_S3"].custom_price is None  # $240 a year is pro's $20 a month
    assert terms["cus_S3"].end is None  # trialing runs
    assert {u: users[u] for u in ("s1_a", "s2_a", "s2_b")} == {
        "s1_a": "cus_S1",
        "s2_a": "cus_S2",
        "s2_b": "cus_S2",
    }


# --- who may edit -------------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_a_shared_store_without_the_editor_role_is_read_only(demo_app_store: Engine) -> None:
    at = tab(demo_app_store, editor=False)
    assert "Enter the editor password" in texts(at.info)
    assert "Read-only: editing needs the editor role" in texts(at.caption)
    assert not can_save(at) and not any(b.key == "accounts.plans.discard" for b in at.button)
    # the tables are shown, as tables
    assert list(frame(at, "period")["name"]) == ["free", "pro", "starter", "team"]
    with demo_app_store.connect() as conn:
        assert len(frame(at, "users")) == len(load_terms(conn))  # one row per term
    before = counts(demo_app_store)
    # a crafted session state (edits, a forged sign-in flag) saves nothing
    at.session_state["_unitwise_editor_session"] = True
    edit(at, "plans", {0: {"price": "99"}}, [{"name": "x", "price": "1"}])
    assert not can_save(at)
    # a CSV can be previewed, not imported
    preview(paste(at, "plans", "name,price\nsilver,15\n"))
    assert "plans: 1 to add, 0 to change" in texts(at.info)
    assert not any(b.key == "accounts.import.run" for b in at.button)
    assert counts(demo_app_store) == before


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_the_embedded_store_is_editable_as_it_is(store_url: str, monkeypatch) -> None:
    """An empty SQLite store: the tables start empty, and a first plan can be added."""
    import streamlit as st

    from tracking.db import make_engine

    monkeypatch.setenv("UNITWISE_DATABASE_URL", store_url)
    st.cache_data.clear()
    engine = make_engine(store_url)
    try:
        at = tab(engine, team=False)
        assert frame(at, "period").empty and frame(at, "users").empty
        edit(at, "plans", added_rows=[{"name": "pro", "price": "20", "period": "month"}])
        assert "Saved plans: 1 added, 0 changed." in texts(save(at, "plans").success)
        assert audit_rows(engine)[0].who == Access(True, "local").who
    finally:
        engine.dispose()
