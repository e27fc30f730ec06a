"""The price table as the Pricing page reads and edits it, on both stores: rates in force in
their quoted units, cell-by-cell validation that saves nothing while a cell is bad, new
versions (never an overwrite) with audit rows, the optimistic conflict check, verification,
patterns for unpriced models and the calls a superseded version priced."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pandas as pd
import pytest
from sqlalchemy import Engine, func, select, update

import tracking
from dashboard import price_table
from dashboard.price_edits import (
    EDITOR_COLUMNS,
    new_model_change,
    newest_version,
    parse_rate_text,
    parse_tier,
    plan_edits,
    save_plan,
    unstorable_cells,
)
from tests.conftest import add_test_prices
from tracking.price_store import RateRow, add_version
from tracking.pricing import load_price_book
from tracking.reprice import apply_reprice
from tracking.schema import audit_log, calls, price_versions

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
GPT = ("openai", "gpt-4o")


@pytest.fixture
def priced(engine: Engine, store_url: str) -> Engine:
    add_test_prices(store_url)
    return engine


def editor_frame(engine: Engine) -> pd.DataFrame:
    with engine.connect() as conn:
        prices = price_table.prices_in_force(conn, NOW, 30)
    return prices.assign(new_from="")[EDITOR_COLUMNS].reset_index(drop=True)


def plan(engine: Engine, edited: pd.DataFrame, when: datetime = NOW, original=None):
    """What saving ``edited`` does, for an editor that began from the table as it is now
    (or from ``original``)."""
    with engine.connect() as conn:
        units = price_table.known_units(conn)
        start = editor_frame(engine) if original is None else original
        return plan_edits(conn, start, edited, units, when, now=NOW)


def base(engine: Engine) -> int:
    with engine.connect() as conn:
        return newest_version(conn)


def versions(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(price_versions)).scalar_one()


def test_rates_in_force_are_shown_in_their_quoted_units(priced: Engine) -> None:
    with priced.begin() as conn:
        add_version(
            conn,
            "openai",
            "whisper-1",
            datetime(2024, 1, 1, tzinfo=UTC),
            [RateRow("audio_seconds", Decimal("0.36"), 3600)],
            source="test",
        )
        add_version(
            conn,
            "google",
            "places",
            datetime(2024, 1, 1, tzinfo=UTC),
            [RateRow("requests", Decimal("17"), 1000), RateRow("characters", Decimal("30"), 10**6)],
            source="test",
        )
        prices = price_table.prices_in_force(conn, NOW, 30)
    shown = {(r.model, r.unit): (r.rate, r.per) for r in prices.itertuples()}
    assert shown[("gpt-4o", "input_tokens")] == ("2.5", "per 1M tokens")
    assert shown[("gpt-4o", "cache_read_tokens")] == ("1.25", "per 1M tokens")
    assert shown[("whisper-1", "audio_seconds")] == ("0.006", "per minute of audio")
    assert shown[("places", "requests")] == ("0.017", "per request")
    assert shown[("places", "characters")] == ("0.03", "per 1K characters")
    assert set(prices["source"]) == {"test"}


def test_an_inexact_conversion_is_rounded_for_display_only() -> None:
    assert price_table.shown_rate(Decimal("0.1"), 3600, "audio_seconds") == "0.001666666667"
    assert price_table.quoted_per("web_searches", 1000) == (1000, "per 1K web searches")
    assert price_table.quoted_per("document_pages", 1) == (1, "per document page")


def test_a_changed_rate_makes_a_new_version_and_keeps_the_old(priced: Engine) -> None:
    edited = editor_frame(priced)
    edited.loc[edited["unit"] == "output_tokens", "rate"] = "8"
    result = plan(priced, edited)
    assert not result.errors
    (change,) = result.changes
    assert change.action == "edit"
    before = versions(priced)
    saved = save_plan(priced, result, base(priced), "ops@example.com", "list price cut", now=NOW)
    assert not saved.conflicts
    assert versions(priced) == before + 1
    with priced.connect() as conn:
        book = load_price_book(conn)
        old = book.quote("openai", "gpt-4o", NOW - timedelta(days=1), {"output_tokens": 10**6})
        new = book.quote("openai", "gpt-4o", NOW + timedelta(seconds=1), {"output_tokens": 10**6})
        entry = conn.execute(select(audit_log).order_by(audit_log.c.id.desc())).first()
    assert (old.cost, new.cost) == (Decimal("10"), Decimal("8"))
    # the untouched rates are copied exactly as stored, not re-derived through the shown unit
    assert new.version_id == saved.saved[0][1]
    assert (
        entry.who == "ops@example.com" and entry.action == "edit" and entry.note == "list price cut"
    )
    assert entry.key == "openai/gpt-4o"
    assert entry.before["rates"]["output_tokens"] == {"rate": "10", "per": 1_000_000}
    assert entry.after["rates"]["output_tokens"] == {"rate": "8", "per": 1_000_000}
    assert entry.after["rates"]["input_tokens"] == {"rate": "2.5", "per": 1_000_000}


def test_an_unchanged_table_saves_nothing(priced: Engine) -> None:
    result = plan(priced, editor_frame(priced))
    assert not result.errors and not result.changes


BAD_CELLS = [
    ("rate", "abc", "Row 1, Rate ($): 'abc' is not a number of dollars"),
    ("rate", "-1", "Row 1, Rate ($): -1 is negative"),
    ("rate", "NaN", "Row 1, Rate ($): 'NaN' is not a finite amount"),
    ("rate", "0.0000000000001", "more than 12 decimal places"),
    ("unit", "tokens", "Row 1, Unit: 'tokens' is not a unit the price table knows"),
    ("tier_above", 1.5, "Row 1, Above input tokens: 1.5 is not a whole number of tokens"),
    ("tier_above", -3, "Row 1, Above input tokens: -3 is negative"),
    ("variant", "cheap", "Row 1, Variant: 'cheap' is neither standard nor batch"),
    ("provider", "", "Row 1, Provider: a provider is needed"),
    ("new_from", "2026-13-01", "Row 1, New from: '2026-13-01' is not a date"),
    (
        "new_from",
        "2023-06-01",
        "Row 1, New from: 2023-06-01 00:00 is not after the version it replaces "
        "(in force from 2024-01-01 00:00 UTC)",
    ),
    (
        "new_from",
        "2024-01-01",
        "Row 1, New from: 2024-01-01 00:00 is not after the version it replaces",
    ),
]


@pytest.mark.parametrize(("column", "value", "message"), BAD_CELLS)
def test_each_bad_cell_is_named_and_nothing_is_saved(
    priced: Engine, column: str, value: object, message: str
) -> None:
    edited = editor_frame(priced)
    edited["tier_above"] = edited["tier_above"].astype(object)
    edited.loc[0, column] = value
    if column == "new_from":
        edited.loc[0, "rate"] = "99"  # a change, so that the date is used
    result = plan(priced, edited)
    assert any(message in str(e) for e in result.errors), [str(e) for e in result.errors]
    assert not result.changes
    with pytest.raises(ValueError, match="not saved"):
        save_plan(priced, result, base(priced), "ops")


def test_a_duplicate_row_is_named(priced: Engine) -> None:
    edited = editor_frame(priced)
    edited = pd.concat([edited, edited.iloc[[0]]], ignore_index=True)
    result = plan(priced, edited)
    assert [str(e) for e in result.errors] == [
        f"Row {len(edited)}, Unit: duplicates row 1 "
        f"(openai/gpt-4o {edited.loc[0, 'unit']} standard)"
    ]


def test_rows_of_one_model_need_one_date(priced: Engine) -> None:
    edited = editor_frame(priced)
    edited["rate"] = ["3", "4", "5"]
    edited["new_from"] = ["2026-07-01", "2026-07-02", ""]
    result = plan(priced, edited)
    assert {e.row for e in result.errors} == {1, 2}
    assert all("different dates" in e.message for e in result.errors)


def test_a_dated_version_takes_effect_from_its_date(priced: Engine) -> None:
    edited = editor_frame(priced)
    edited.loc[edited["unit"] == "input_tokens", ["rate", "new_from"]] = ["2", "2026-07-01"]
    result = plan(priced, edited)
    assert [c.effective_from for c in result.changes] == [datetime(2026, 7, 1, tzinfo=UTC)]


def test_a_deleted_row_retires_that_rate_and_all_rows_retire_the_model(priced: Engine) -> None:
    edited = editor_frame(priced)
    kept = edited[edited["unit"] != "cache_read_tokens"]
    (change,) = plan(priced, kept).changes
    assert {r.unit for r in change.after} == {"input_tokens", "output_tokens"}
    result = plan(priced, edited.iloc[0:0])
    (retired,) = result.changes
    assert retired.action == "retire" and retired.after == ()
    save_plan(priced, result, base(priced), "ops", now=NOW)
    with priced.connect() as conn:
        book = load_price_book(conn)
    assert (
        book.quote("openai", "gpt-4o", NOW + timedelta(hours=1), {"input_tokens": 5}).cost is None
    )
    assert book.quote(
        "openai", "gpt-4o", NOW - timedelta(hours=1), {"input_tokens": 4 * 10**5}
    ).cost == Decimal("1")


def test_a_new_row_adds_a_model(priced: Engine) -> None:
    edited = editor_frame(priced)
    row = {"provider": "acme", "model": "llama-self-hosted", "unit": "output_tokens",
           "variant": "standard", "tier_above": 0, "rate": "0.40", "new_from": ""}  # fmt: skip
    edited = pd.concat([edited, pd.DataFrame([row])], ignore_index=True)
    result = plan(priced, edited)
    (change,) = result.changes
    assert (change.provider, change.model, change.action) == ("acme", "llama-self-hosted", "add")
    assert change.after == (RateRow("output_tokens", Decimal("0.40"), 1_000_000),)


def test_the_second_of_two_conflicting_editors_is_told_and_nothing_is_lost(priced: Engine) -> None:
    started = base(priced)  # both editors began here
    first = editor_frame(priced)
    first.loc[first["unit"] == "output_tokens", "rate"] = "8"
    begun = editor_frame(priced)
    second = begun.copy()
    second.loc[second["unit"] == "output_tokens", "rate"] = "12"
    assert not save_plan(priced, plan(priced, first), started, "alice", now=NOW).conflicts
    count = versions(priced)
    later = NOW + timedelta(minutes=1)
    result = save_plan(priced, plan(priced, second, later, begun), started, "bob", now=NOW)
    (conflict,) = result.conflicts
    assert (conflict.provider, conflict.model) == GPT
    assert conflict.current["output_tokens"] == "$8 per 1M tokens"  # what alice saved
    assert versions(priced) == count and not result.saved  # bob's edit is not written over it
    # bob saves over it knowingly: the base moves to what he was shown
    again = save_plan(priced, plan(priced, second, later, begun), base(priced), "bob")
    # his unchanged rows took what is in force now; his one change went over alice's
    ((change, _),) = again.saved
    assert {r.unit: r.rate for r in change.after}["output_tokens"] == Decimal("12")
    assert again.saved and not again.conflicts


def test_two_editors_saving_at_once_cannot_both_win(priced: Engine) -> None:
    started = base(priced)
    results = []

    def save(rate: str, who: str, when: datetime) -> None:
        edited = editor_frame(priced)
        edited.loc[edited["unit"] == "output_tokens", "rate"] = rate
        results.append(save_plan(priced, plan(priced, edited, when), started, who))

    threads = [
        threading.Thread(target=save, args=(str(9 + i), f"editor{i}", NOW + timedelta(minutes=i)))
        for i in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(len(r.saved) for r in results) == [0, 0, 0, 1]
    with priced.connect() as conn:
        edits = conn.execute(select(func.count()).where(audit_log.c.action == "edit")).scalar_one()
    assert edits == 1


def test_mark_verified_clears_the_stale_flag_and_is_audited(priced: Engine) -> None:
    with priced.begin() as conn:
        conn.execute(update(price_versions).values(created_at=NOW - timedelta(days=45)))
    with priced.connect() as conn:
        assert price_table.prices_in_force(conn, NOW, 30)["stale"].all()
        assert not price_table.prices_in_force(conn, NOW, 60)["stale"].any()
    with priced.begin() as conn:
        assert price_table.mark_verified(conn, [GPT], "ops", NOW, "checked openai.com") == 1
    with priced.connect() as conn:
        prices = price_table.prices_in_force(conn, NOW, 30)
        entries = price_table.audit_entries(conn, ["verify"])
    assert not prices["stale"].any()
    assert list(entries["who"]) == ["ops"] and list(entries["note"]) == ["checked openai.com"]
    with priced.begin() as conn, pytest.raises(ValueError, match="no price in force"):
        price_table.mark_verified(conn, [("openai", "nope")], "ops", NOW, None)


def test_a_pattern_prices_a_family_of_unpriced_calls(priced: Engine, configured: str) -> None:
    for org in ("acme", "globex"):
        tracking.record(provider="openai", model=f"ft:gpt-4o-mini:{org}:x1", input_tokens=10**6,
                        output_tokens=0, occurred_at=NOW - timedelta(days=2))  # fmt: skip
    tracking.flush(timeout=10)
    with priced.connect() as conn:
        usage = price_table.unpriced_usage(conn)
    assert set(usage["model"]) == {"ft:gpt-4o-mini:acme:x1", "ft:gpt-4o-mini:globex:x1"}
    with priced.connect() as conn:
        result = new_model_change(conn, "openai", "ft:gpt-4o-mini:acme:x1", "ft:gpt-4o-mini:*",
                                  [RateRow("input_tokens", Decimal("0.3"), 10**6)],
                                  NOW - timedelta(days=3))  # fmt: skip
    assert not result.errors
    save_plan(priced, result, base(priced), "ops", now=NOW)
    apply_reprice(priced, unpriced_only=True, who="ops")
    with priced.connect() as conn:
        costs = {r.model: r.cost_usd for r in conn.execute(select(calls.c.model, calls.c.cost_usd))}
        assert price_table.unpriced_usage(conn).empty
    assert costs == {
        "ft:gpt-4o-mini:acme:x1": Decimal("0.3"),
        "ft:gpt-4o-mini:globex:x1": Decimal("0.3"),
    }


def test_calls_priced_with_a_superseded_version_are_found_and_repriced(
    priced: Engine, configured: str
) -> None:
    """A tracker prices with the version its cache holds for up to a minute after an edit."""
    saved_at = datetime.now(UTC)
    with priced.begin() as conn:  # the price in force was made long ago
        conn.execute(update(price_versions).values(created_at=saved_at - timedelta(days=90)))
    for seconds in (-300, 20, 40):  # one call before the edit, two in the minute after it
        tracking.record(provider="openai", model="gpt-4o", input_tokens=10**6, output_tokens=0,
                        occurred_at=saved_at + timedelta(seconds=seconds))  # fmt: skip
    tracking.flush(timeout=10)  # priced with the version this tracker had loaded: the old one
    with priced.begin() as conn:  # the edit, in force from the moment it is saved
        rates = [RateRow("input_tokens", Decimal("2"), 10**6)]
        add_version(conn, "openai", "gpt-4o", saved_at, rates, source="editor")
        since = price_table.recent_edit_start(conn, datetime.now(UTC))
        found = price_table.superseded_calls(conn, since)
    assert saved_at - timedelta(minutes=1) <= since <= saved_at
    assert list(found["calls"]) == [2]
    apply_reprice(priced, models=["gpt-4o"], start=saved_at.date(), who="ops")
    with priced.connect() as conn:
        assert price_table.superseded_calls(conn, since).empty
        costs = sorted(r[0] for r in conn.execute(select(calls.c.cost_usd)))
    assert costs == [Decimal("2"), Decimal("2"), Decimal("2.5")]


def test_history_says_what_each_version_changed(priced: Engine) -> None:
    edited = editor_frame(priced)
    edited = edited[edited["unit"] != "cache_read_tokens"]
    edited.loc[edited["unit"] == "input_tokens", "rate"] = "2"
    save_plan(priced, plan(priced, edited), base(priced), "ops", now=NOW)
    with priced.connect() as conn:
        entries = price_table.model_history(conn, *GPT)
        points = price_table.history_points(conn, *GPT, NOW + timedelta(days=1))
    assert [e.changed for e in entries] == [
        "first price",
        "removed cache_read_tokens; input_tokens $2.5 → $2",
    ]
    assert entries[1].version.created_by == "ops"
    steps = points[points["rate_of"] == "input_tokens"]
    assert list(steps["dollars"]) == [2.5, 2.0, 2.0]  # carried on to now


def test_cell_parsers() -> None:
    assert parse_rate_text("$2.50") == Decimal("2.50")
    assert parse_rate_text(0.1) == Decimal("0.1")
    assert parse_tier("200,000") == 200_000
    assert parse_tier(None) == 0
    for bad in ("1e400x", "inf", True):
        with pytest.raises(ValueError):
            parse_rate_text(bad)


def set_rate(frame: pd.DataFrame, unit: str, rate: str) -> pd.DataFrame:
    out = frame.copy()
    out.loc[out["unit"] == unit, "rate"] = rate
    return out


def test_a_version_saved_elsewhere_after_the_edit_began_is_a_conflict(priced: Engine) -> None:
    """Another app, or `prices add`, saves while an editor edits: the base is the newest
    version id when the edit began, whatever wrote the later one."""
    began, start = base(priced), editor_frame(priced)
    with priced.begin() as conn:  # e.g. python -m tracking prices add
        rates = [RateRow("output_tokens", Decimal("6"), 10**6)]
        add_version(conn, "openai", "gpt-4o", NOW - timedelta(hours=1), rates, source="cli")
    edited = set_rate(start, "output_tokens", "12")
    result = save_plan(priced, plan(priced, edited, original=start), began, "bob", now=NOW)
    assert [c.current["output_tokens"] for c in result.conflicts] == ["$6 per 1M tokens"]
    assert not result.saved


def test_saving_over_a_conflict_keeps_the_other_editors_work(priced: Engine) -> None:
    """Bob began before Alice added cache writes and retired cache reads; he changed only the
    output rate. Saved over her version, his one change is applied to it: her work stays."""
    began, start = base(priced), editor_frame(priced)
    alice = start[start["unit"] != "cache_read_tokens"]
    row = {"provider": "openai", "model": "gpt-4o", "unit": "cache_write_tokens",
           "variant": "standard", "tier_above": 0, "rate": "3.75", "new_from": ""}  # fmt: skip
    alice = pd.concat([alice, pd.DataFrame([row])], ignore_index=True)
    save_plan(priced, plan(priced, alice, NOW - timedelta(hours=2)), began, "alice", now=NOW)
    bob = set_rate(start, "output_tokens", "12")
    refused = save_plan(priced, plan(priced, bob, original=start), began, "bob", now=NOW)
    assert refused.conflicts
    # carol saves after bob was shown alice's version: saving over it is refused again
    carol = set_rate(editor_frame(priced), "input_tokens", "2.25")
    save_plan(priced, plan(priced, carol, NOW - timedelta(hours=1)), refused.seen, "carol")
    again = save_plan(priced, plan(priced, bob, original=start), refused.seen, "bob", now=NOW)
    assert [c.current["input_tokens"] for c in again.conflicts] == ["$2.25 per 1M tokens"]
    final = save_plan(priced, plan(priced, bob, original=start), again.seen, "bob", now=NOW)
    ((change, _),) = final.saved
    assert {r.unit: r.rate for r in change.after} == {
        "input_tokens": Decimal("2.25"),  # carol's
        "cache_write_tokens": Decimal("3.75"),  # alice's, and her retired cache read stays so
        "output_tokens": Decimal("12"),  # bob's
    }


def test_an_untouched_rate_is_kept_exactly_as_stored(priced: Engine) -> None:
    with priced.begin() as conn:  # $0.10 an hour: 0.001666… a minute, shown rounded
        rates = [RateRow("audio_seconds", Decimal("0.1"), 3600)]
        add_version(conn, "openai", "whisper-x", datetime(2024, 1, 1, tzinfo=UTC), rates, "test")
        rates = [RateRow("requests", Decimal("1"), 1)]
        add_version(conn, "openai", "whisper-y", datetime(2024, 1, 1, tzinfo=UTC), rates, "test")
    start = editor_frame(priced)
    assert start.loc[start["model"] == "whisper-x", "rate"].item() == "0.001666666667"
    row = {"provider": "openai", "model": "whisper-x", "unit": "requests", "variant": "standard",
           "tier_above": 0, "rate": "0.01", "new_from": ""}  # fmt: skip
    edited = pd.concat([start, pd.DataFrame([row])], ignore_index=True)
    (change,) = plan(priced, edited, original=start).changes
    assert set(change.after) == {
        RateRow("audio_seconds", Decimal("0.1"), 3600),
        RateRow("requests", Decimal("0.01"), 1),
    }


def test_a_new_rate_of_a_unit_quoted_per_thousand_is_stored_per_thousand(priced: Engine) -> None:
    with priced.begin() as conn:
        rates = [RateRow("web_searches", Decimal("10"), 1000)]
        add_version(conn, "openai", "search-a", datetime(2024, 1, 1, tzinfo=UTC), rates, "test")
    start = editor_frame(priced)
    row = {"provider": "openai", "model": "gpt-4o", "unit": "web_searches", "variant": "batch",
           "tier_above": 0, "rate": "5", "new_from": ""}  # fmt: skip
    edited = pd.concat([start, pd.DataFrame([row])], ignore_index=True)
    (change,) = plan(priced, edited, original=start).changes
    assert RateRow("web_searches", Decimal("5"), 1000, 0, "batch") in change.after


def test_an_edit_dated_after_a_scheduled_version_builds_on_it(priced: Engine) -> None:
    with priced.begin() as conn:  # an input cut scheduled for July
        rates = [
            RateRow("input_tokens", Decimal("1"), 10**6),
            RateRow("output_tokens", Decimal("10"), 10**6),
        ]
        add_version(conn, "openai", "gpt-4o", datetime(2026, 7, 1, tzinfo=UTC), rates, "test")
    start = editor_frame(priced)  # what is in force in June
    edited = set_rate(start, "output_tokens", "8")
    edited.loc[edited["unit"] == "output_tokens", "new_from"] = "2026-08-01"
    (change,) = plan(priced, edited, original=start).changes
    assert {r.unit: r.rate for r in change.after} == {
        "input_tokens": Decimal("1"),
        "output_tokens": Decimal("8"),
    }


def test_mixed_case_names_and_editor_patterns_price_their_calls(
    priced: Engine, configured: str
) -> None:
    for model in ("Llama-3-70B", "ft:gpt-4o-mini:acme:1"):
        tracking.record(provider="openai", model=model, input_tokens=10**6, output_tokens=0,
                        occurred_at=NOW - timedelta(days=1))  # fmt: skip
    tracking.flush(timeout=10)
    start = editor_frame(priced)
    rows = [{"provider": "openai", "model": name, "unit": "input_tokens", "variant": "standard",
             "tier_above": 0, "rate": "1", "new_from": ""}
            for name in ("Llama-3-70B", "ft:gpt-4o-mini:*")]  # fmt: skip
    edited = pd.concat([start, pd.DataFrame(rows)], ignore_index=True)
    result = plan(priced, edited, NOW - timedelta(days=2), original=start)
    save_plan(priced, result, base(priced), "ops", now=NOW)
    apply_reprice(priced, unpriced_only=True, who="ops")
    with priced.connect() as conn:
        costs = {r.model: r.cost_usd for r in conn.execute(select(calls.c.model, calls.c.cost_usd))}
    assert costs == {"Llama-3-70B": Decimal("1"), "ft:gpt-4o-mini:acme:1": Decimal("1")}


def test_add_a_price_as_a_model_priced_already_maps_the_calls_to_it(
    priced: Engine, configured: str
) -> None:
    tracking.record(provider="openai", model="my-4o-deployment", input_tokens=10**6,
                    output_tokens=0, occurred_at=NOW - timedelta(days=1))  # fmt: skip
    tracking.flush(timeout=10)
    versions_before = versions(priced)
    with priced.connect() as conn:
        typed = [RateRow("input_tokens", Decimal("9"), 10**6)]
        refused = new_model_change(conn, "openai", "my-4o-deployment", "gpt-4o", typed, NOW)
        alias = new_model_change(conn, "openai", "my-4o-deployment", "gpt-4o", [], NOW)
        wrong = new_model_change(conn, "openai", "my-4o-deployment", "ft:*", typed, NOW)
    assert "has a price already: leave the rates empty" in str(refused.errors[0])
    assert "does not match 'my-4o-deployment'" in str(wrong.errors[0])
    (change,) = alias.changes
    assert change.action == "alias" and not change.writes_version
    save_plan(priced, alias, base(priced), "ops", now=NOW)
    assert versions(priced) == versions_before  # gpt-4o's own rates are left alone
    apply_reprice(priced, unpriced_only=True, who="ops")
    with priced.connect() as conn:
        cost = conn.execute(select(calls.c.cost_usd)).scalar_one()
        entry = conn.execute(select(audit_log).where(audit_log.c.action == "alias")).one()
    assert cost == Decimal("2.5")  # gpt-4o's input rate
    assert entry.after == {"pattern": "my-4o-deployment", "priced_as": "gpt-4o"}


def test_scheduled_versions_are_listed(priced: Engine) -> None:
    with priced.begin() as conn:
        rates = [RateRow("input_tokens", Decimal("1"), 10**6)]
        add_version(conn, "openai", "gpt-4o", datetime(2026, 7, 1, tzinfo=UTC), rates, "test")
        found = price_table.scheduled_versions(conn, NOW)
        assert price_table.scheduled_versions(conn, datetime(2026, 7, 2, tzinfo=UTC)) == []
    assert [(v.model, v.effective_from) for v in found] == [
        ("gpt-4o", datetime(2026, 7, 1, tzinfo=UTC))
    ]


def test_unstorable_cells_are_numbered_as_the_table_numbers_its_rows() -> None:
    # five rows shown, the second and fourth deleted: row 3 of the table is the fifth shown,
    # the added rows follow the three kept; a NUL and a lone surrogate named, nothing else
    state = {
        "edited_rows": {"0": {"rate": "2"}, "4": {"model": "gpt\ud800"}, "3": {"model": "x\x00"}},
        "added_rows": [
            {"provider": "openai", "model": "ok"},
            {"provider": "\udfff", "tier_above": 5},
        ],
        "deleted_rows": [1, 3],
    }
    found = [(e.row, e.column, e.message) for e in unstorable_cells(state, 5)]
    assert found == [
        (3, "model", "contains a lone surrogate (half of a character)"),
        (5, "provider", "contains a lone surrogate (half of a character)"),
    ]
    assert unstorable_cells({}, 5) == [] and unstorable_cells({"added_rows": [None]}, 0) == []
