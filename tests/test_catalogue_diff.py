"""The catalogue diff of the Pricing page and ``prices refresh``: one set of rules. The diff says
what a refresh would write and writes nothing; an accept writes the chosen entries with an
audit_log row each; a refresh is an accept of everything. Both stores."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, func, select, update

from tracking.catalogue import EPOCH, CatalogueVersion, catalogue_models
from tracking.catalogue_store import (
    accept_catalogue,
    catalogue_diff,
    change_key,
    load_catalogue,
    refresh_catalogue,
)
from tracking.cli import main
from tracking.pricing import load_price_book
from tracking.schema import audit_log, model_patterns, price_versions, prices
from tracking.sqltypes import plain_decimal

D = Decimal
M = 1_000_000
NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def catalogued(engine: Engine) -> Engine:
    with engine.begin() as conn:
        load_catalogue(conn)
    return engine


def current_version(provider: str, model: str) -> CatalogueVersion:
    entry = next(m for m in catalogue_models() if (m.provider, m.model) == (provider, model))
    return [v for v in entry.versions if v.effective_from <= NOW][-1]


def edit_rate(
    conn: Connection, provider: str, model: str, at: datetime, unit: str, rate: D
) -> None:
    """An upstream correction, seen from the store: its version differs from the catalogue."""
    vid = conn.execute(
        select(price_versions.c.id).where(
            price_versions.c.provider == provider,
            price_versions.c.model == model,
            price_versions.c.effective_from == at,
        )
    ).scalar_one()
    done = conn.execute(
        update(prices)
        .where(prices.c.version_id == vid, prices.c.unit == unit, prices.c.variant == "standard")
        .values(rate=rate)
    )
    assert done.rowcount == 1


def drop_model(conn: Connection, provider: str, model: str) -> None:
    """A model the store lacks: its versions, rates and name patterns gone."""
    ids = select(price_versions.c.id).where(
        price_versions.c.provider == provider, price_versions.c.model == model
    )
    conn.execute(prices.delete().where(prices.c.version_id.in_(ids)))
    conn.execute(
        price_versions.delete().where(
            price_versions.c.provider == provider, price_versions.c.model == model
        )
    )
    conn.execute(
        model_patterns.delete().where(
            model_patterns.c.provider == provider, model_patterns.c.model == model
        )
    )


def snapshot(conn: Connection) -> dict[str, Any]:
    """Everything a catalogue write could touch, without ids and creation times."""
    versions = {
        r.id: (r.provider, r.model, r.effective_from, r.source, r.note)
        for r in conn.execute(select(price_versions))
    }
    return {
        "versions": sorted(versions.values()),
        "rates": sorted(
            (*versions[r.version_id][:3], r.unit, r.variant, r.tier_above, D(r.rate), r.per)
            for r in conn.execute(select(prices))
        ),
        "patterns": sorted(tuple(r) for r in conn.execute(select(model_patterns))),
        "audit": conn.execute(select(func.count()).select_from(audit_log)).scalar_one(),
    }


def audit_rows(conn: Connection) -> list[Any]:
    return list(conn.execute(select(audit_log).order_by(audit_log.c.id)))


def patterns_of(conn: Connection, provider: str, model: str) -> list[str]:
    return sorted(
        conn.execute(
            select(model_patterns.c.pattern).where(
                model_patterns.c.provider == provider, model_patterns.c.model == model
            )
        ).scalars()
    )


@pytest.fixture
def drifted(catalogued: Engine) -> Engine:
    """gpt-4o's rates in force edited (a correction upstream), dall-e-2 and places-details gone."""
    gpt4o = current_version("openai", "gpt-4o")
    with catalogued.begin() as conn:
        edit_rate(conn, "openai", "gpt-4o", gpt4o.effective_from, "input_tokens", D("9.99"))
        drop_model(conn, "openai", "dall-e-2")
        drop_model(conn, "google", "places-details")
    return catalogued


def keys_of(changes: list[Any]) -> dict[str, Any]:
    return {c.key: c for c in changes}


def test_a_store_loaded_with_the_catalogue_has_an_empty_diff(catalogued: Engine) -> None:
    with catalogued.connect() as conn:
        assert catalogue_diff(conn, NOW) == []
        assert catalogue_diff(conn) == []
        # the first load is the store's starting point, not an edit
        assert audit_rows(conn) == []


def test_the_diff_lists_what_differs_with_the_rates_before_and_after(drifted: Engine) -> None:
    gpt4o = current_version("openai", "gpt-4o")
    catalogue_input = next(
        r for r in gpt4o.rates if (r.unit, r.variant) == ("input_tokens", "standard")
    )
    with drifted.connect() as conn:
        before = snapshot(conn)
        changes = keys_of(catalogue_diff(conn, NOW))
        assert snapshot(conn) == before  # the diff writes nothing
    changed = change_key("changed", "openai", "gpt-4o", gpt4o.effective_from)
    dalle = change_key("added", "openai", "dall-e-2", EPOCH)
    places = change_key("added", "google", "places-details", EPOCH)
    assert set(changes) == {changed, dalle, places}

    fix = changes[changed]
    assert (fix.kind, fix.provider, fix.model, fix.acceptable) == (
        "changed",
        "openai",
        "gpt-4o",
        True,
    )
    assert fix.effective_from == NOW and fix.catalogue_from == gpt4o.effective_from
    assert fix.store_from == gpt4o.effective_from
    store = {(r.unit, r.variant, r.tier_above): r.rate for r in fix.store_rates or ()}
    wanted = {(r.unit, r.variant, r.tier_above): r.rate for r in fix.catalogue_rates}
    assert store[("input_tokens", "standard", 0)] == D("9.99")
    assert wanted[("input_tokens", "standard", 0)] == catalogue_input.rate
    assert store.keys() == wanted.keys()
    assert fix.catalogue_rates == gpt4o.rates
    assert fix.differences == (
        f"input_tokens: $9.99/1000000 -> ${plain_decimal(catalogue_input.rate)}/1000000",
    )
    assert "input_tokens: $9.99/1000000" in fix.store_text

    gone = changes[dalle]
    assert (gone.kind, gone.effective_from, gone.store_rates, gone.store_from) == (
        "added",
        EPOCH,
        None,
        None,
    )
    assert gone.differences == ("images: none -> $0.02/1",)
    assert gone.store_text == "none" and gone.catalogue_text == "images: $0.02/1"

    # the keys name the catalogue version, not the moment: an accept made later finds them
    with drifted.connect() as conn:
        later = keys_of(catalogue_diff(conn, NOW + timedelta(minutes=5)))
    assert set(later) == set(changes)
    assert later[changed].effective_from == NOW + timedelta(minutes=5)


def test_accepting_some_entries_writes_only_those_with_an_audit_row_each(drifted: Engine) -> None:
    gpt4o = current_version("openai", "gpt-4o")
    changed = change_key("changed", "openai", "gpt-4o", gpt4o.effective_from)
    dalle = change_key("added", "openai", "dall-e-2", EPOCH)
    places = change_key("added", "google", "places-details", EPOCH)
    with drifted.connect() as conn:
        before = snapshot(conn)
        dalle_patterns = patterns_of(conn, "openai", "dall-e-2")
    assert dalle_patterns == []
    with drifted.begin() as conn:
        report = accept_catalogue(conn, [changed, dalle], who="alice", now=NOW)
    assert [(v.provider, v.model, v.effective_from) for v in report.added] == [
        ("openai", "dall-e-2", EPOCH)
    ]
    assert [(v.model, v.effective_from) for v, _ in report.changed] == [("gpt-4o", NOW)]
    assert report.skipped == [] and len(report.audit_ids) == 2

    with drifted.connect() as conn:
        after = snapshot(conn)
        rows = audit_rows(conn)
        book = load_price_book(conn)
        # the accepted model's patterns are back; the other missing model stays missing
        assert patterns_of(conn, "openai", "dall-e-2") == ["dall-e-2"]
        assert patterns_of(conn, "google", "places-details") == []
        left = keys_of(catalogue_diff(conn, NOW))
    assert len(after["versions"]) == len(before["versions"]) + 2
    new = set(after["versions"]) - set(before["versions"])
    assert {(p, m, e) for p, m, e, _s, _n in new} == {
        ("openai", "gpt-4o", NOW),
        ("openai", "dall-e-2", EPOCH),
    }
    assert set(before["versions"]) <= set(after["versions"])  # nothing overwritten
    assert set(before["rates"]) <= set(after["rates"])
    # the correction is in force from now on; the edited version is still there for the past
    usage = {"input_tokens": M}
    assert book.quote("openai", "gpt-4o", NOW + timedelta(seconds=1), usage).cost == next(
        r.rate for r in gpt4o.rates if (r.unit, r.variant) == ("input_tokens", "standard")
    )
    assert book.quote("openai", "gpt-4o", NOW - timedelta(seconds=1), usage).cost == D("9.99")
    assert book.quote("openai", "dall-e-2", NOW, {"images": 3}).cost == D("0.06")

    assert [r.id for r in rows] == report.audit_ids
    by_key = {r.key: r for r in rows}
    assert set(by_key) == {"openai/gpt-4o", "openai/dall-e-2"}
    for row in rows:
        assert (row.who, row.action, row.table_name) == ("alice", "catalogue", "price_versions")
    fix = by_key["openai/gpt-4o"]
    before_rates = {(r["unit"], r["variant"]): r["rate"] for r in fix.before["rates"]}
    after_rates = {(r["unit"], r["variant"]): r["rate"] for r in fix.after["rates"]}
    assert before_rates[("input_tokens", "standard")] == "9.99"  # money as decimal strings
    assert after_rates[("input_tokens", "standard")] == plain_decimal(
        next(r.rate for r in gpt4o.rates if (r.unit, r.variant) == ("input_tokens", "standard"))
    )
    assert all(isinstance(r["rate"], str) for r in fix.before["rates"] + fix.after["rates"])
    assert datetime.fromisoformat(fix.before["effective_from"]) == gpt4o.effective_from
    assert datetime.fromisoformat(fix.after["effective_from"]) == NOW
    added = by_key["openai/dall-e-2"]
    assert added.before is None
    assert added.after["rates"] == [
        {"unit": "images", "variant": "standard", "tier_above": 0, "rate": "0.02", "per": 1}
    ]

    # what was not accepted is still pending; the replaced version is now kept as stored
    assert set(left) == {places, change_key("kept", "openai", "gpt-4o", gpt4o.effective_from)}
    assert (
        left[places].acceptable
        and not left[change_key("kept", "openai", "gpt-4o", gpt4o.effective_from)].acceptable
    )


def test_a_second_accept_of_the_same_keys_changes_nothing(drifted: Engine) -> None:
    gpt4o = current_version("openai", "gpt-4o")
    chosen = [
        change_key("changed", "openai", "gpt-4o", gpt4o.effective_from),
        change_key("added", "openai", "dall-e-2", EPOCH),
    ]
    with drifted.begin() as conn:
        accept_catalogue(conn, chosen, who="alice", now=NOW)
    with drifted.connect() as conn:
        before = snapshot(conn)
    with drifted.begin() as conn:
        again = accept_catalogue(conn, chosen, who="alice", now=NOW + timedelta(minutes=1))
    assert again.added == [] and again.changed == [] and again.audit_ids == []
    assert sorted(key for key, _why in again.skipped) == sorted(chosen)
    assert all("not in the catalogue diff any more" in why for _key, why in again.skipped)
    assert any(line.startswith("skipped changed openai/gpt-4o") for line in again.lines())
    with drifted.connect() as conn:
        assert snapshot(conn) == before


def test_a_kept_entry_is_listed_but_cannot_be_accepted(drifted: Engine) -> None:
    gpt4o = current_version("openai", "gpt-4o")
    with drifted.begin() as conn:
        refresh_catalogue(conn, NOW)
    kept = change_key("kept", "openai", "gpt-4o", gpt4o.effective_from)
    with drifted.connect() as conn:
        changes = catalogue_diff(conn, NOW)
        before = snapshot(conn)
    assert [(c.key, c.acceptable) for c in changes] == [(kept, False)]
    assert changes[0].store_rates is not None and changes[0].store_from == gpt4o.effective_from
    with drifted.begin() as conn:
        report = accept_catalogue(conn, [kept, "added nobody/nothing 2000"], who="bob", now=NOW)
    assert report.added == [] and report.changed == []
    assert dict(report.skipped)[kept].startswith("kept")
    assert "not in the catalogue diff" in dict(report.skipped)["added nobody/nothing 2000"]
    with drifted.connect() as conn:
        assert snapshot(conn) == before


def test_refresh_is_an_accept_of_every_entry(drifted: Engine) -> None:
    with drifted.connect() as conn:
        diff = catalogue_diff(conn, NOW)
        before = snapshot(conn)
    acceptable = [c.key for c in diff if c.acceptable]
    assert len(acceptable) == 3
    with drifted.connect() as conn, conn.begin() as tx:
        accepted = accept_catalogue(conn, acceptable, who="cli", now=NOW)
        by_accept = snapshot(conn)
        tx.rollback()
    with drifted.connect() as conn:
        assert snapshot(conn) == before
    with drifted.begin() as conn:
        report = refresh_catalogue(conn, NOW)
    with drifted.connect() as conn:
        assert snapshot(conn) == by_accept
        rows = audit_rows(conn)
        assert [c.kind for c in catalogue_diff(conn, NOW)] == ["kept"]
    assert list(report.lines()) == list(accepted.lines())
    assert len(report.added) == 2 and len(report.changed) == 1
    assert [(r.who, r.action, r.key) for r in rows] == [
        ("cli", "catalogue", f"{c.provider}/{c.model}") for c in diff if c.acceptable
    ]


def test_prices_refresh_prints_its_report_and_audits_as_cli(
    drifted: Engine, store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    gpt4o = current_version("openai", "gpt-4o")
    catalogue_input = next(
        r for r in gpt4o.rates if (r.unit, r.variant) == ("input_tokens", "standard")
    )
    with drifted.connect() as conn:
        unchanged = len(snapshot(conn)["versions"]) - 1  # all but the edited one
    assert main(["prices", "refresh", "--url", store_url]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"changed openai/gpt-4o (from {datetime.now(UTC):%Y-%m-%d}): ")
    assert f"input_tokens: ${plain_decimal(catalogue_input.rate)}/1000000" in lines[0]
    assert "E+" not in lines[0]  # $10, never $1E+1
    assert lines[1:3] == [
        "added openai/dall-e-2 from 2000-01-01",
        "added google/places-details from 2000-01-01",
    ]
    assert lines[-1] == f"2 versions added, 1 changed, {unchanged} unchanged, 0 kept as stored."
    with drifted.connect() as conn:
        assert [(r.who, r.key) for r in audit_rows(conn)] == [
            ("cli", "openai/gpt-4o"),
            ("cli", "openai/dall-e-2"),
            ("cli", "google/places-details"),
        ]
    assert main(["prices", "refresh", "--url", store_url]) == 0
    again = capsys.readouterr().out.splitlines()
    assert again[-1] == f"0 versions added, 0 changed, {unchanged + 2} unchanged, 1 kept as stored."


def test_two_accepts_of_one_entry_at_once_write_it_once(drifted: Engine) -> None:
    """The second waits for the first and finds the entry gone, rather than writing it again."""
    gpt4o = current_version("openai", "gpt-4o")
    key = change_key("changed", "openai", "gpt-4o", gpt4o.effective_from)
    with drifted.connect() as conn:
        before = len(snapshot(conn)["versions"])
    second: dict[str, Any] = {}

    def accept_too() -> None:
        with drifted.begin() as conn:
            second["report"] = accept_catalogue(
                conn, [key], who="bob", now=NOW + timedelta(seconds=30)
            )

    with drifted.begin() as conn:
        first = accept_catalogue(conn, [key], who="alice", now=NOW)
        thread = threading.Thread(target=accept_too)
        thread.start()
        time.sleep(0.5)  # the other accept is waiting now
        assert "report" not in second
    thread.join(30)
    assert len(first.changed) == 1
    assert second["report"].changed == [] and [k for k, _ in second["report"].skipped] == [key]
    with drifted.connect() as conn:
        assert len(snapshot(conn)["versions"]) == before + 1
        assert [(r.who, r.key) for r in audit_rows(conn)] == [("alice", "openai/gpt-4o")]
