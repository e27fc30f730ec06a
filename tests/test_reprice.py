"""Repricing stored calls: exactly as new calls are priced, only the selection, provider costs
kept, rollups equal to the calls after it (a writer or a second reprice running beside it too),
idempotent and audited; the CLI previews, refuses bad input and writes nothing on --dry-run."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

import tracking
from tests.conftest import add_test_prices, assert_rollups_equal_the_calls, run_together
from tracking.cli import main
from tracking.db import make_engine
from tracking.price_store import RateRow, add_version
from tracking.pricing import load_price_book
from tracking.reprice import apply_reprice, plan_reprice, quote_call
from tracking.schema import ROLLUP_TABLES, audit_log, calls

DAY0 = datetime(2026, 11, 10, 9, tzinfo=UTC)


def add_house_price(engine: Engine, effective: datetime = datetime(2020, 1, 1, tzinfo=UTC)) -> int:
    with engine.begin() as conn:
        return add_version(
            conn,
            "acme",
            "house-7b",
            effective,
            [
                RateRow("input_tokens", Decimal("0.40"), 1_000_000),
                RateRow("output_tokens", Decimal("1.60"), 1_000_000),
                RateRow("requests", Decimal("2"), 1000),
            ],
            source="test",
        )


def record_calls(model: str, count: int, provider: str = "acme", **extra: Any) -> None:
    """Calls over ten days, three users, two features, some errors; flushed."""
    for i in range(count):
        tracking.record(
            provider=provider,
            model=model,
            input_tokens=1000 + 37 * i,
            output_tokens=200 + 11 * i,
            occurred_at=DAY0 + timedelta(days=i % 10, minutes=i),
            user_id=f"u_{i % 3}" if i % 4 else None,
            feature=("chat", "search", None)[i % 3],
            status="error" if i % 9 == 0 else "ok",
            duration_ms=100 + i,
            **extra,
        )
    assert tracking.flush(20)


def snapshot(engine: Engine) -> dict[str, Any]:
    """Every call's cost and version, every rollup row, the audit log's size."""
    with engine.connect() as conn:
        return {
            "calls": {
                r.id: (r.cost_usd, r.price_version_id, r.cost_source)
                for r in conn.execute(select(calls))
            },
            **{t.name: sorted(map(tuple, conn.execute(select(t)))) for t in ROLLUP_TABLES},
            "audits": conn.execute(select(func.count()).select_from(audit_log)).scalar_one(),
        }


def audits(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(audit_log).order_by(audit_log.c.id)))


def reprice(url: str, *args: str) -> int:
    return main(["prices", "reprice", "--url", url, *args])


def test_unpriced_calls_repriced_as_new_calls_are_priced_once_and_audited(
    configured: str, engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    record_calls("house-7b", 40)
    assert all(v == (None, None, None) for v in snapshot(engine)["calls"].values())
    version = add_house_price(engine)

    assert reprice(configured, "--unpriced", "--batch-size", "15") == 0
    out, err = capsys.readouterr()
    assert "acme/house-7b" in out and "40 of 40 calls change." in out
    assert "unpriced 40 -> 0" in out
    assert "calls  unpriced -> $" in out and "E-" not in out  # never "$0" for an unknown cost
    assert [line.split(":")[0] for line in err.splitlines()] == ["batch 1", "batch 2", "batch 3"]
    assert_rollups_equal_the_calls(engine)

    # the same usage recorded now, priced by tracking itself: equal to the nano-dollar
    tracking.refresh_prices()
    record_calls("house-7b", 40, tags={"copy": True})
    with engine.connect() as conn:
        rows = conn.execute(select(calls)).all()
        book = load_price_book(conn)
    originals = {(r.occurred_at, r.input_tokens): r for r in rows if not r.tags}
    copies = {(r.occurred_at, r.input_tokens): r for r in rows if r.tags}
    assert len(originals) == len(copies) == 40
    for key, original in originals.items():
        copy = copies[key]
        assert (original.cost_usd, original.price_version_id, original.cost_source) == (
            copy.cost_usd,
            version,
            "computed",
        )
        assert quote_call(book, original) == (original.cost_usd, version)
        assert original.cost_usd > 0

    started, entry = audits(engine)  # three batches: a row with the first, one with the last
    assert (started.action, started.key, started.after) == (
        "reprice started",
        entry.key,
        {"batch_size": 15},
    )
    assert (entry.who, entry.action, entry.table_name) == ("cli", "reprice", "calls")
    assert "unpriced only" in entry.key and entry.note is None
    assert entry.before["total"] == {"calls": 40, "unpriced_calls": 40, "cost_usd": "0.000000000"}
    cost = sum((r.cost_usd for r in originals.values()), Decimal(0))
    assert entry.after["total"] == {"calls": 40, "unpriced_calls": 0, "cost_usd": str(cost)}
    assert entry.after["changed_calls"] == 40

    before = snapshot(engine)
    assert reprice(configured, "--unpriced") == 0
    assert "nothing to change" in capsys.readouterr().out
    assert reprice(configured, "--provider", "acme", "--model", "house-7b") == 0
    assert "Reprice: nothing to change." in capsys.readouterr().out
    after = snapshot(engine)
    assert after["audits"] == before["audits"] + 2
    assert {k: v for k, v in after.items() if k != "audits"} == {
        k: v for k, v in before.items() if k != "audits"
    }
    assert [e.note for e in audits(engine)[2:]] == ["nothing to change"] * 2


def test_a_price_correction_reprices_only_the_model_and_days_selected(
    configured: str, engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    add_test_prices(configured)
    add_house_price(engine)
    tracking.refresh_prices()
    record_calls("gpt-4o", 60, provider="openai")
    record_calls("house-7b", 30)
    before = snapshot(engine)
    with engine.begin() as conn:  # a correction in force from the 14th on
        fixed = add_version(
            conn,
            "openai",
            "gpt-4o",
            datetime(2026, 11, 14, tzinfo=UTC),
            [
                RateRow("input_tokens", Decimal("2"), 1_000_000),
                RateRow("output_tokens", Decimal("8"), 1_000_000),
            ],
            source="test",
        )
    args = [
        "--provider",
        "openai",
        "--model",
        "gpt-4o",
        "--from",
        "2026-11-12",
        "--to",
        "2026-11-16",
    ]
    assert reprice(configured, *args) == 0
    out = capsys.readouterr().out
    assert "openai/gpt-4o" in out and "acme/house-7b" not in out
    assert_rollups_equal_the_calls(engine)
    with engine.connect() as conn:
        rows = {r.id: r for r in conn.execute(select(calls))}
    changed = {i for i, v in snapshot(engine)["calls"].items() if v != before["calls"][i]}
    want = {
        i
        for i, r in rows.items()
        if r.model == "gpt-4o" and date(2026, 11, 14) <= r.occurred_at.date() <= date(2026, 11, 16)
    }
    assert changed == want and len(want) == 18  # the 12th and 13th keep the version in force
    for i in want:
        r = rows[i]
        assert r.price_version_id == fixed and r.cost_source == "computed"
        assert r.cost_usd == (Decimal(r.input_tokens) * 2 + Decimal(r.output_tokens) * 8) / 10**6
    (entry,) = audits(engine)
    assert "models=gpt-4o" in entry.key and "from=2026-11-12 to=2026-11-16" in entry.key
    assert list(entry.after["by_model"]) == ["openai/gpt-4o"]


def test_provider_reported_costs_are_kept(configured: str, engine: Engine) -> None:
    add_test_prices(configured)
    tracking.refresh_prices()
    record_calls("house-7b", 10, cost_usd="0.5")
    record_calls("gpt-4o", 10, provider="openai", cost_usd=Decimal("0.25"))
    record_calls("house-7b", 5)  # unpriced: the only ones a reprice may change
    add_house_price(engine)
    before = snapshot(engine)["calls"]
    assert reprice(configured, "--unpriced") == 0
    assert reprice(configured) == 0  # everything
    after = snapshot(engine)["calls"]
    provider = {i for i, v in before.items() if v[2] == "provider"}
    assert len(provider) == 20 and all(after[i] == before[i] for i in provider)
    assert sum(after[i] != before[i] for i in before) == 5
    assert_rollups_equal_the_calls(engine)


def test_dry_run_prints_the_preview_and_writes_nothing(
    configured: str, engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    record_calls("house-7b", 12)
    add_house_price(engine)
    before = snapshot(engine)
    assert reprice(configured, "--unpriced", "--dry-run") == 0
    out = capsys.readouterr().out
    assert "12 of 12 calls change." in out and "Dry run: nothing written." in out
    assert "total" in out and "unpriced 12 -> 0" in out
    assert snapshot(engine) == before
    with engine.connect() as conn:
        preview = plan_reprice(conn, unpriced_only=True)
    assert preview.changed == 12 and preview.total.after.unpriced == 0
    assert set(preview.by_day) == {(DAY0 + timedelta(days=d)).date() for d in range(10)}
    assert sum(c.after.cost for c in preview.by_day.values()) == preview.total.after.cost


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "2026-13-01"], "--from '2026-13-01': write a date as YYYY-MM-DD"),
        (["--to", "yesterday"], "--to 'yesterday': write a date as YYYY-MM-DD"),
        (["--from", "2026-11-10", "--to", "2026-11-01"], "is after --to"),
        (["--unpriced", "--model", "house-7b"], "--unpriced reprices every unpriced call"),
    ],
)
def test_bad_input_is_refused_with_a_reason_and_writes_nothing(
    configured: str,
    engine: Engine,
    args: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    record_calls("house-7b", 3)
    add_house_price(engine)
    before = snapshot(engine)
    assert reprice(configured, *args) == 2
    assert message in capsys.readouterr().err
    assert snapshot(engine) == before


def test_rollups_stay_equal_to_the_calls_with_a_writer_and_a_second_reprice_beside_it(
    configured: str, engine: Engine
) -> None:
    """Two reprices in small batches and the writer storing new calls of the same model, some
    priced (it picks the new price up midway), all at once."""
    record_calls("house-7b", 120)
    add_house_price(engine)
    stop = threading.Event()

    def write() -> None:
        i = 0
        while not stop.is_set() or i < 60:
            tracking.record(
                provider="acme",
                model="house-7b",
                input_tokens=500 + i,
                occurred_at=DAY0 + timedelta(days=i % 10, hours=1),
                user_id=f"u_{i % 3}",
            )
            i += 1
            if i == 30:
                tracking.refresh_prices()
            if i % 10 == 0:
                tracking.flush(10)
        tracking.flush(20)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        run_together(lambda: apply_reprice(engine, unpriced_only=True, batch_size=7), threads=2)
    finally:
        stop.set()
        writer.join()
    assert tracking.flush(20)
    assert_rollups_equal_the_calls(engine)
    apply_reprice(engine, unpriced_only=True)  # whatever the writer stored unpriced
    assert_rollups_equal_the_calls(engine)
    with engine.connect() as conn:
        left = conn.execute(select(func.count()).where(calls.c.cost_usd.is_(None))).scalar_one()
        total = conn.execute(select(func.count()).select_from(calls)).scalar_one()
    assert left == 0 and total >= 180
    assert apply_reprice(engine, provider="acme").preview.changed == 0


# user ids and features the PostgreSQL path writes into array values: quotes, backslashes,
# commas, braces, the word NULL, spaces, non-ASCII, empty and none
AWKWARD = ['u "quoted"', "back\\slash", "comma,{brace}", "NULL", " spaced ", "ünïcode", "", None]


def test_a_reprice_in_batches_stores_what_pricing_each_call_afresh_gives(
    configured: str, engine: Engine
) -> None:
    """Calls of every kind (token counts with cache parts, batch calls, fractional and whole
    other units, unknown models, provider-reported costs, awkward user ids and features) over
    eighteen days, price versions starting inside them, repriced in small batches: on
    PostgreSQL through the array statements on the writing threads. Every call then holds
    exactly what the engine gives it afresh, the rollups equal the calls, and a second run
    changes nothing."""
    add_test_prices(configured)
    add_house_price(engine)
    with engine.begin() as conn:
        add_version(
            conn,
            "acme",
            "ears-1",
            datetime(2020, 1, 1, tzinfo=UTC),
            [RateRow("audio_seconds", Decimal("0.006"), 60)],
            source="test",
        )
    tracking.refresh_prices()
    for i in range(150):
        kind = i % 6
        fields: dict[str, Any] = {
            "occurred_at": DAY0 + timedelta(hours=3 * i, seconds=i),
            "user_id": AWKWARD[i % len(AWKWARD)],
            "feature": AWKWARD[(i // 3) % len(AWKWARD)],
        }
        if kind == 0:
            tracking.record("openai", "gpt-4o", input_tokens=900 + i, output_tokens=i, **fields)
        elif kind == 1:
            tracking.record(
                "openai",
                "gpt-4o",
                input_tokens=5000 + i,
                cache_read_tokens=4000,
                output_tokens=300,
                batch=i % 4 == 1,
                **fields,
            )
        elif kind == 2:
            tracking.record("acme", "house-7b", input_tokens=10 * i, requests=2, **fields)
        elif kind == 3:
            tracking.record("acme", "ears-1", audio_seconds=0.1 * i + 0.05, **fields)
        elif kind == 4:
            tracking.record("acme", "no-such-model", input_tokens=i + 1, **fields)
        else:
            tracking.record("acme", "house-7b", input_tokens=i, cost_usd="0.01", **fields)
    assert tracking.flush(20)
    with engine.begin() as conn:  # corrections from days inside the month, one with tiers
        add_version(
            conn,
            "openai",
            "gpt-4o",
            DAY0 + timedelta(days=9, hours=3),
            [
                RateRow("input_tokens", Decimal("2"), 1_000_000),
                RateRow("input_tokens", Decimal("4"), 1_000_000, tier_above=5_050),
                RateRow("cache_read_tokens", Decimal("0.5"), 1_000_000),
                RateRow("output_tokens", Decimal("8"), 1_000_000),
                RateRow("input_tokens", Decimal("1"), 1_000_000, variant="batch"),
            ],
            source="test",
        )
        add_version(
            conn,
            "acme",
            "ears-1",
            DAY0 + timedelta(days=12),
            [RateRow("audio_seconds", Decimal("0.0065"), 60)],
            source="test",
        )
        add_version(
            conn,
            "acme",
            "no-such-model",
            DAY0 + timedelta(days=15),
            [RateRow("input_tokens", Decimal("3"), 1_000_000)],
            source="test",
        )
    before = snapshot(engine)
    seen: list[tuple[int, int, int]] = []
    result = apply_reprice(engine, batch_size=16, progress=lambda *p: seen.append(p))

    with engine.connect() as conn:
        book = load_price_book(conn)
        rows = conn.execute(select(calls)).all()
    assert len(rows) == 150 and result.batches == 8  # 125 selected: 25 are provider-reported
    assert [s[0] for s in seen] == list(range(1, 9))  # each batch as it commits, in order
    assert [s[1] for s in seen] == [min(16 * b, 125) for b in range(1, 9)]
    changed = 0
    for row in rows:
        if row.cost_source == "provider":
            assert (row.cost_usd, row.price_version_id) == (Decimal("0.01"), None)
            assert before["calls"][row.id] == (row.cost_usd, None, "provider")
            continue
        quote = quote_call(book, row)
        assert (row.cost_usd, row.price_version_id) == quote, row
        assert row.cost_source == ("computed" if quote.cost is not None else None)
        changed += before["calls"][row.id] != (row.cost_usd, row.price_version_id, row.cost_source)
    assert changed == result.preview.changed > 30
    assert_rollups_equal_the_calls(engine)
    again = snapshot(engine)
    assert apply_reprice(engine, batch_size=7).preview.changed == 0
    assert {k: v for k, v in snapshot(engine).items() if k != "audits"} == {
        k: v for k, v in again.items() if k != "audits"
    }


def test_a_batch_that_fails_to_write_stops_the_reprice_and_leaves_the_store_consistent(
    configured: str, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batches before it stay committed and its own rolls back (on PostgreSQL, the one
    written beside it may commit too); the audit log says the run started and how far it got,
    no connection is left open, rollups equal the calls, and a second run finishes the work."""
    from tracking import reprice

    record_calls("house-7b", 60)
    add_house_price(engine)
    with engine.connect() as conn:
        third = sorted(conn.execute(select(calls.c.id)).scalars())[20]  # the third batch's first
    real = reprice._write_batch

    def failing(conn: Any, priced: Any) -> None:
        if str(priced.changes[0][0]) == str(third):
            raise RuntimeError("the store went away")
        real(conn, priced)

    monkeypatch.setattr(reprice, "_write_batch", failing)
    with pytest.raises(RuntimeError, match="the store went away"):
        apply_reprice(engine, unpriced_only=True, batch_size=10)
    monkeypatch.undo()
    assert engine.pool.checkedout() == 0
    assert_rollups_equal_the_calls(engine)
    with engine.connect() as conn:
        left = conn.execute(select(func.count()).where(calls.c.cost_usd.is_(None))).scalar_one()
        third_cost = conn.execute(select(calls.c.cost_usd).where(calls.c.id == third)).scalar()
    assert third_cost is None
    assert left == 40 if engine.dialect.name == "sqlite" else left in (30, 40)
    started, failed = audits(engine)
    assert (started.action, failed.action) == ("reprice started", "reprice failed")
    assert failed.key == started.key and "unpriced only" in failed.key
    assert failed.after == {
        "batches_committed": (60 - left) // 10,
        "changed_calls": 60 - left,
        "error": "RuntimeError: the store went away",
    }
    assert "run it again to finish" in failed.note
    result = apply_reprice(engine, unpriced_only=True, batch_size=10)
    assert result.preview.changed == left
    assert_rollups_equal_the_calls(engine)
    assert [entry.action for entry in audits(engine)][2:] == ["reprice started", "reprice"]


def test_a_reprice_failing_in_its_first_batch_leaves_no_audit_row(
    configured: str, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing was committed, so nothing is logged: the started row rolls back with its batch."""
    from tracking import reprice

    record_calls("house-7b", 30)
    add_house_price(engine)

    def failing(conn: Any, priced: Any) -> None:
        raise RuntimeError("the store went away")

    monkeypatch.setattr(reprice, "_write_batch", failing)
    with pytest.raises(RuntimeError, match="the store went away"):
        apply_reprice(engine, unpriced_only=True, batch_size=10)
    assert audits(engine) == []
    with engine.connect() as conn:
        left = conn.execute(select(func.count()).where(calls.c.cost_usd.is_(None))).scalar_one()
    assert left == 30


@pytest.mark.postgres
def test_postgres_reads_columns_without_result_processors(pg_url: str) -> None:
    """The PostgreSQL path takes the driver's tuples as they come (no SQLAlchemy Rows): that is
    only right while no column it reads needs a result processor."""
    from tracking.reprice import _batch_columns

    engine = make_engine(pg_url)
    try:
        for column_ in _batch_columns(postgres=True):
            kind = column_.type.dialect_impl(engine.dialect)
            assert kind.result_processor(engine.dialect, None) is None, column_
    finally:
        engine.dispose()
