"""The Pricing page, rendered with AppTest from the entry script on both stores: edits driven
through the editor's session state, each kind of bad cell, a conflict between two editors,
access on both kinds of store, catalogue acceptance and a reprice, asserting what the page
shows and what the store holds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import streamlit as st
from sqlalchemy import Engine, delete, func, select
from streamlit.testing.v1 import AppTest

from dashboard import price_table
from dashboard.access import hash_password
from dashboard.md_escape import md_plain
from tests.conftest import assert_rollups_equal_the_calls
from tracking.catalogue_store import load_catalogue
from tracking.db import make_engine
from tracking.pricing import load_price_book
from tracking.reprice import quote_call
from tracking.schema import audit_log, calls, price_versions, prices

ENTRY = str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py")
PASSWORD = "correct horse battery staple"
EDITOR = "pricing.editor"


PASSWORD_SECRETS = {"unitwise": {"editor_password_hash": hash_password(PASSWORD, n=2**10)}}


def page(
    engine: Engine, secrets: dict | None = None, search: str = "gpt-4o", editor: bool = True
) -> AppTest:
    """The Pricing page; on PostgreSQL (a shared store) signed in with the editor password
    unless ``editor`` is False (the embedded SQLite store is editable as it is)."""
    shared = engine.dialect.name != "sqlite"
    at = AppTest.from_file(ENTRY, default_timeout=90)
    if secrets is None and shared and editor:
        secrets = PASSWORD_SECRETS
    for name, value in (secrets or {}).items():
        at.secrets[name] = value
    at.run()
    at.switch_page("../pages/pricing.py").run()
    assert not at.exception, at.exception
    if shared and editor:
        enter_password(at, PASSWORD)
    if search and at.text_input(key="pricing.search").value != search:
        at.text_input(key="pricing.search").input(search).run()
    return at


def enter_password(at: AppTest, password: str) -> AppTest:
    next(t for t in at.text_input if t.label == "Editor password").input(password)
    next(b for b in at.button if b.label == "Sign in to edit").click().run()
    assert not at.exception, at.exception
    return at


def who(engine: Engine) -> str:
    """The audit log's "who" of the page's editor in these tests."""
    return "local" if engine.dialect.name == "sqlite" else "editor (password)"


def has_button(at: AppTest, key: str) -> bool:
    return any(b.key == key for b in at.button)


def click(at: AppTest, key: str) -> AppTest:
    """Click the button ``key``; the page must rerun without an exception."""
    at.button(key=key).click().run()
    assert not at.exception, at.exception
    return at


def edit_table(at: AppTest, key: str, edited_rows=None, added_rows=(), deleted_rows=()) -> AppTest:
    """Edit the st.data_editor ``key`` as a user would: its session state holds the edits."""
    at.session_state[key] = {
        "edited_rows": edited_rows or {},
        "added_rows": list(added_rows),
        "deleted_rows": list(deleted_rows),
    }
    return at.run()


def can_save(at: AppTest) -> bool:
    return has_button(at, "pricing.save")


def edit(at: AppTest, edited_rows=None, added_rows=(), deleted_rows=()) -> AppTest:
    return edit_table(at, EDITOR, edited_rows, added_rows, deleted_rows)


def save(at: AppTest) -> AppTest:
    return click(at, "pricing.save")


def row_of(at: AppTest, unit: str) -> int:
    """The editor's row (0-based) of a unit of the model shown: the editor lists the rows of
    the prices table, in its order."""
    table = frame(at, "set_by").reset_index(drop=True)
    return int(table.index[table["unit"] == unit][0])


def frame(at: AppTest, column: str):
    """The first table on the page with this column (AppTest's tables carry no key)."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


def count(engine: Engine, table) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def texts(elements) -> str:
    """The elements' text as the reader sees it (a name in a message is Markdown-escaped)."""
    return "\n".join(md_plain(e.value) for e in elements)


def test_the_page_shows_prices_in_force_and_unpriced_usage_first(demo_app_store: Engine) -> None:
    at = page(demo_app_store)
    labels = [t.label for t in at.tabs]
    with demo_app_store.connect() as conn:
        unpriced = price_table.unpriced_usage(conn)
    assert labels[0] == f"Unpriced ({len(unpriced)})" and len(unpriced) >= 2
    assert "calls of" in texts(at.warning) and "unknown, not $0" in texts(at.warning)
    shown = frame(at, "first_day")
    assert list(shown["model"]) == list(unpriced["model"])
    table = frame(at, "set_by")
    rates = {r.unit: (r.rate, r.per) for r in table.itertuples()}
    assert rates == {
        "input_tokens": ("2.5", "per 1M tokens"),
        "cache_read_tokens": ("1.25", "per 1M tokens"),
        "output_tokens": ("10", "per 1M tokens"),
    }
    assert not at.exception


def test_a_valid_edit_saves_a_new_version_with_an_audit_row(demo_app_store: Engine) -> None:
    at = page(demo_app_store)
    before = count(demo_app_store, price_versions)
    edit(at, {row_of(at, "output_tokens"): {"rate": "8"}})
    at.text_input(key="pricing.note").input("price cut").run()
    save(at)
    assert "Saved 1 change" in texts(at.success)
    assert count(demo_app_store, price_versions) == before + 1
    with demo_app_store.connect() as conn:
        entry = conn.execute(select(audit_log).where(audit_log.c.action == "edit")).one()
        book = load_price_book(conn)
    assert entry.who == who(demo_app_store) and entry.note == "price cut"
    assert entry.after["rates"]["output_tokens"]["rate"] == "8"
    quote = book.quote(
        "openai", "gpt-4o", datetime.now(UTC) + timedelta(seconds=1), {"output_tokens": 10**6}
    )
    assert quote.cost == Decimal("8")
    # the editor starts again from what is in force now
    table = frame(at, "set_by")
    assert table.loc[table["unit"] == "output_tokens", "rate"].item() == "8"


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        ({"rate": "ten"}, "Rate ($): 'ten' is not a number of dollars"),
        ({"rate": "-2"}, "Rate ($): -2 is negative"),
        ({"unit": "tokenz"}, "Unit: 'tokenz' is not a unit the price table knows"),
        ({"tier_above": -3}, "Above input tokens: -3 is negative"),
        ({"rate": "3", "new_from": "01/02/2026"}, "New from: '01/02/2026' is not a date"),
        (
            {"rate": "3", "new_from": "2023-01-01"},
            "New from: 2023-01-01 00:00 is not after the version it replaces",
        ),
    ],
)
def test_each_bad_cell_is_named_and_nothing_is_saved(
    demo_app_store: Engine, cell: dict, message: str
) -> None:
    at = page(demo_app_store)
    before = (
        count(demo_app_store, price_versions),
        count(demo_app_store, prices),
        count(demo_app_store, audit_log),
    )
    row = row_of(at, "input_tokens")
    edit(at, {row: cell})
    save(at)
    errors = texts(at.error)
    assert "Nothing was saved" in errors and f"Row {row + 1}, {message}" in errors, errors
    assert (
        count(demo_app_store, price_versions),
        count(demo_app_store, prices),
        count(demo_app_store, audit_log),
    ) == before


def test_a_duplicate_added_row_is_named(demo_app_store: Engine) -> None:
    at = page(demo_app_store)
    row = {"provider": "openai", "model": "gpt-4o", "unit": "input_tokens", "variant": "standard",
           "tier_above": 0, "rate": "1"}  # fmt: skip
    edit(at, added_rows=[row])
    save(at)
    assert "Unit: duplicates row" in texts(at.error)


def test_retiring_a_rate_and_adding_a_model(demo_app_store: Engine) -> None:
    at = page(demo_app_store)
    added = {"provider": "selfhosted", "model": "llama-3-70b", "unit": "output_tokens",
             "variant": "standard", "tier_above": 0, "rate": "0.9"}  # fmt: skip
    edit(at, deleted_rows=[row_of(at, "cache_read_tokens")], added_rows=[added])
    save(at)
    assert "Saved 2 changes" in texts(at.success)
    with demo_app_store.connect() as conn:
        actions = [r.action for r in conn.execute(select(audit_log).order_by(audit_log.c.key))]
        book = load_price_book(conn)
    assert actions == ["edit", "add"]
    later = datetime.now(UTC) + timedelta(seconds=1)
    version = book.version_at("openai", "gpt-4o", later)
    assert {unit for unit, _ in version.rates} == {"input_tokens", "output_tokens"}
    assert book.quote("selfhosted", "llama-3-70b", later, {"output_tokens": 10**6}).cost == Decimal(
        "0.9"
    )


def test_a_conflicting_edit_is_refused_shown_and_kept(demo_app_store: Engine) -> None:
    bob = page(demo_app_store)  # bob begins editing
    alice = page(demo_app_store)  # so does alice, in another session, and saves first
    edit(alice, {row_of(alice, "output_tokens"): {"rate": "7"}})
    assert "Saved 1 change" in texts(save(alice).success)
    versions = count(demo_app_store, price_versions)
    edit(bob, {row_of(bob, "output_tokens"): {"rate": "12"}})
    save(bob)
    assert "another editor saved openai/gpt-4o after you began" in texts(bob.error)
    assert "output_tokens $7 per 1M tokens" in texts(bob.markdown)  # what is in force now
    assert count(demo_app_store, price_versions) == versions  # alice's edit stands
    assert bob.session_state[EDITOR]["edited_rows"]  # bob's edit is still in his editor
    bob.button(key="pricing.rebase").click().run()
    assert "Saved 1 change" in texts(save(bob).success)  # saved knowingly, over alice's
    with demo_app_store.connect() as conn:
        rows = conn.execute(
            select(audit_log).where(audit_log.c.action == "edit").order_by(audit_log.c.id)
        )
        rates = [r.after["rates"]["output_tokens"]["rate"] for r in rows]
    assert rates == ["7", "12"]


def test_a_shared_store_without_an_editor_role_is_read_only(demo_app_store: Engine) -> None:
    at = page(demo_app_store, editor=False)
    if demo_app_store.dialect.name == "sqlite":
        assert can_save(at)  # the embedded store is editable
        return
    assert "read-only" in texts(at.info) and "editor_password_hash" in texts(at.info)
    assert not can_save(at)
    assert "Read-only" in texts(at.caption)
    # a crafted session state (edits, a base, a forged sign-in flag) saves nothing
    at.session_state["_unitwise_editor_session"] = True
    at.session_state["pricing.base"] = {}
    edit(at, {0: {"rate": "99"}})
    assert not can_save(at) and count(demo_app_store, audit_log) == 0


def test_the_editor_password_grants_editing_on_a_shared_store(demo_app_store: Engine) -> None:
    if demo_app_store.dialect.name == "sqlite":
        return  # the embedded store asks for no password (the test above shows it editable)
    at = page(demo_app_store, PASSWORD_SECRETS, editor=False)
    assert "Enter the editor password" in texts(at.info) and not can_save(at)
    enter_password(at, "wrong")
    assert "not the editor password" in texts(at.error) and not can_save(at)
    enter_password(at, PASSWORD)
    at.text_input(key="pricing.search").input("gpt-4o").run()
    edit(at, {row_of(at, "output_tokens"): {"rate": "9"}})
    save(at)
    with demo_app_store.connect() as conn:
        who = conn.execute(select(audit_log.c.who).where(audit_log.c.action == "edit")).scalar_one()
    assert who == "editor (password)"


def test_price_an_unpriced_model_then_reprice_its_calls(demo_app_store: Engine) -> None:
    """From the unpriced list: add a price for one model, preview the reprice of the unpriced
    calls, apply it; the result equals pricing every call afresh, and the rollups follow."""
    with demo_app_store.connect() as conn:
        unpriced = price_table.unpriced_usage(conn)
        # a model billed in tokens only (the demo's whisper and tts calls report audio seconds
        # and characters, which token prices leave unpriced); which one leads varies by hour
        other_units = {m for m, u in conn.execute(select(calls.c.model, calls.c.units)) if u}
    tokens_only = unpriced[~unpriced["model"].isin(other_units)]
    provider, model, calls_of_model = tokens_only.iloc[0][["provider", "model", "calls"]]
    at = page(demo_app_store, search="")
    at.selectbox(key="pricing.add_model").select(f"{provider}/{model}")
    at.text_input(key="pricing.add_input_tokens").input("1.5")
    at.text_input(key="pricing.add_output_tokens").input("6")
    at.button[[b.label for b in at.button].index("Add price")].click().run()
    assert not at.exception, at.exception
    assert f"{provider}/{model}: version" in texts(at.success), texts(at.error)
    # the reprice tab now offers the unpriced calls; preview first
    assert at.checkbox(key="pricing.reprice_only_unpriced").value
    at.date_input(key="pricing.reprice_from").set_value(unpriced["first_day"].min())
    at.button(key="pricing.reprice_preview_button").click().run()
    preview = frame(at, "cost before")
    total = preview[preview["model"] == "total"].iloc[0]
    assert int(total["calls"]) == int(unpriced["calls"].sum())
    assert int(total["unpriced before"]) == int(unpriced["calls"].sum())
    assert int(total["unpriced after"]) == int(unpriced["calls"].sum()) - int(calls_of_model)
    with demo_app_store.connect() as conn:
        before = conn.execute(select(func.count()).where(calls.c.cost_usd.is_(None))).scalar_one()
    at.button(key="pricing.reprice_apply").click().run()
    assert not at.exception, at.exception
    assert f"Repriced {int(calls_of_model):,} calls" in texts(at.success)
    with demo_app_store.connect() as conn:
        book = load_price_book(conn)
        rows = list(conn.execute(select(calls)))
        entry = conn.execute(select(audit_log).where(audit_log.c.action == "reprice")).one()
    assert sum(r.cost_usd is None for r in rows) == before - calls_of_model
    for row in rows:  # every call as the engine prices it afresh
        if row.cost_source != "provider":
            assert (row.cost_usd, row.price_version_id) == tuple(quote_call(book, row)), row.id
    assert entry.who == who(demo_app_store)
    assert_rollups_equal_the_calls(demo_app_store)
    # applying it twice changes nothing the second time
    at.button(key="pricing.reprice_preview_button").click().run()
    assert "0 calls would change" in texts(at.markdown)


def test_the_overview_unpriced_warning_links_to_pricing(demo_app_store: Engine) -> None:
    at = AppTest.from_file(ENTRY, default_timeout=90).run()
    assert "unpriced" in texts(at.warning)
    (link,) = at.get("page_link")
    assert (link.proto.page, link.proto.label) == ("pricing", "Price them on the Pricing page")


def test_the_catalogue_difference_is_listed_and_accepted(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UNITWISE_DATABASE_URL", store_url)
    st.cache_data.clear()
    engine = make_engine(store_url)
    with engine.begin() as conn:
        load_catalogue(conn)
        # the store lost one model the catalogue has
        of_gpt = (price_versions.c.provider == "openai", price_versions.c.model == "gpt-4o")
        version = conn.execute(select(price_versions.c.id).where(*of_gpt)).scalars().all()
        conn.execute(delete(prices).where(prices.c.version_id.in_(version)))
        conn.execute(delete(price_versions).where(price_versions.c.id.in_(version)))
    try:
        at = page(engine, search="")
        listed = frame(at, "differences")
        mine = listed.index[(listed["provider"] == "openai") & (listed["model"] == "gpt-4o")]
        assert len(mine) == len(version) and set(listed.loc[mine, "what"]) == {
            "missing from the store"
        }
        at.session_state["pricing.catalogue"] = {
            "edited_rows": {int(i): {"accept": True} for i in mine},
            "added_rows": [],
            "deleted_rows": [],
        }
        at.run()
        at.button(key="pricing.catalogue_accept").click().run()
        assert not at.exception, at.exception
        assert f"Accepted {len(version)} catalogue version" in texts(at.success)
        with engine.connect() as conn:
            back = conn.execute(select(func.count()).where(price_versions.c.model == "gpt-4o",
                                price_versions.c.provider == "openai")).scalar_one()  # fmt: skip
            audited = conn.execute(
                select(func.count()).where(audit_log.c.action == "catalogue")
            ).scalar_one()
        assert back == len(version) and audited == len(version)
        assert "every rate of the installed catalogue" in texts(at.success)
    finally:
        engine.dispose()
        st.cache_data.clear()


def test_a_store_without_prices_says_so(store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UNITWISE_DATABASE_URL", store_url)
    st.cache_data.clear()
    engine = make_engine(store_url)
    try:
        at = page(engine, search="")
        assert "No prices here: every call is unpriced" in texts(at.warning)
        assert "differences from the installed genai-prices catalogue" in texts(at.caption)
    finally:
        engine.dispose()


def test_the_audit_note_does_not_carry_over_to_the_next_save(demo_app_store: Engine) -> None:
    at = page(demo_app_store)
    edit(at, {row_of(at, "output_tokens"): {"rate": "8"}})
    at.text_input(key="pricing.note").input("list price cut").run()
    save(at)
    assert at.text_input(key="pricing.note").value == ""
    edit(at, {row_of(at, "input_tokens"): {"rate": "2"}})
    save(at)
    with demo_app_store.connect() as conn:
        notes = [n for (n,) in conn.execute(select(audit_log.c.note).order_by(audit_log.c.id))]
    assert notes == ["list price cut", None]


def test_the_add_a_price_date_follows_the_model_chosen(demo_app_store: Engine) -> None:
    with demo_app_store.connect() as conn:
        unpriced = price_table.unpriced_usage(conn)
    at = page(demo_app_store, search="")
    for row in unpriced.head(3).itertuples():
        at.selectbox(key="pricing.add_model").select(f"{row.provider}/{row.model}").run()
        shown = [d for d in at.date_input if d.label == "In force from"]
        assert [d.value for d in shown] == [row.first_day]


def test_a_read_only_reader_cannot_mark_verified(demo_app_store: Engine) -> None:
    at = page(demo_app_store, editor=False)
    if demo_app_store.dialect.name == "sqlite":
        return  # editable: test_price_edits' mark_verified test covers the write
    assert next(b for b in at.button if b.label == "Mark verified").disabled


def test_accepting_the_catalogue_skips_a_model_an_editor_saved_since(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UNITWISE_DATABASE_URL", store_url)
    st.cache_data.clear()
    engine = make_engine(store_url)
    with engine.begin() as conn:
        load_catalogue(conn)
        of_gpt = (price_versions.c.provider == "openai", price_versions.c.model == "gpt-4o")
        newest = conn.execute(select(func.max(price_versions.c.id)).where(*of_gpt)).scalar_one()
        # the rates in force differ from the catalogue's: the list offers to correct them
        conn.execute(
            prices.update().where(prices.c.version_id == newest).values(rate=Decimal("99"))
        )
    try:
        at = page(engine, search="")
        listed = frame(at, "differences")
        mine = listed.index[(listed["provider"] == "openai") & (listed["model"] == "gpt-4o")]
        assert set(listed.loc[mine, "what"]) == {"rates differ (new version from now)"}
        at.session_state["pricing.catalogue"] = {
            "edited_rows": {int(i): {"accept": True} for i in mine},
            "added_rows": [],
            "deleted_rows": [],
        }
        at.run()  # ticked, on the list as it is
        editor = page(engine, search="openai/gpt-4o")  # an editor saves it, before the accept
        edit(editor, {row_of(editor, "output_tokens"): {"rate": "11"}})
        save(editor)
        before = count(engine, price_versions)
        at.button(key="pricing.catalogue_accept").click().run()
        assert "saved by an editor since this list was made" in texts(at.success)
        assert count(engine, price_versions) == before  # the editor's $11 stands
    finally:
        engine.dispose()
        st.cache_data.clear()
