"""The migrations build the schema that tracking.schema describes, on both stores."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import func, insert, inspect, select, text

from tests.conftest import new_pg_database
from tracking.schema import call_ids, calls, daily_rollups, metadata


def test_migrations_build_every_table(engine) -> None:
    names = set(inspect(engine).get_table_names())
    assert {t.name for t in metadata.sorted_tables} <= names
    columns = {c["name"] for c in inspect(engine).get_columns("calls")}
    for required in (
        "id",
        "occurred_at",
        "provider",
        "model",
        "user_id",
        "feature",
        "status",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "reasoning_tokens",
        "cost_usd",
    ):
        assert required in columns


def test_indexes_cover_dashboard_access_paths(engine) -> None:
    indexed = {tuple(ix["column_names"]) for ix in inspect(engine).get_indexes("calls")}
    assert ("occurred_at",) in indexed
    assert ("user_id", "occurred_at") in indexed
    assert ("feature", "occurred_at") in indexed
    assert ("model", "occurred_at") in indexed


def test_money_is_exact_decimal_on_both_stores(engine) -> None:
    from tracking.partitions import ensure_months

    amounts = [Decimal("0.000000001"), Decimal("0.1"), Decimal("0.2"), Decimal("1234.567890123")]
    with engine.begin() as conn:
        ensure_months(conn, [(2026, 11)])
        for i, amount in enumerate(amounts):
            conn.execute(
                insert(calls).values(
                    id=__import__("uuid").uuid4(),
                    occurred_at=datetime(2026, 11, 2, i, tzinfo=UTC),
                    provider="openai",
                    model="gpt-4o",
                    status="ok",
                    batch=False,
                    cost_usd=amount,
                )
            )
        total = conn.execute(select(func.sum(calls.c.cost_usd))).scalar_one()
        one = conn.execute(select(calls.c.cost_usd).order_by(calls.c.occurred_at)).scalars().first()
    assert total == Decimal("1234.867890124")
    assert isinstance(total, Decimal)
    assert one == Decimal("0.000000001")


def test_partitioned_on_postgres_only(engine) -> None:
    from sqlalchemy import text

    if engine.dialect.name != "postgresql":
        return
    with engine.connect() as conn:
        kind = conn.execute(
            text("SELECT relkind FROM pg_class WHERE relname = 'calls'")
        ).scalar_one()
    assert kind == "p"
    assert call_ids.primary_key.columns.keys() == ["id"]
    assert daily_rollups.primary_key.columns.keys() == [
        "day",
        "user_id",
        "feature",
        "provider",
        "model",
    ]


def test_migration_0002_fills_the_narrower_rollups_of_a_0001_store(engine, monkeypatch) -> None:
    """A store written at 0001 (calls and daily_rollups only), partly removed by retention, then
    migrated: the new rollups hold the totals of every call ever written, as daily_rollups do."""
    import tracking.pg_copy
    import tracking.store
    from tests.conftest import rollups_from_calls
    from tests.test_store import varied_events
    from tracking.migrate import downgrade, upgrade
    from tracking.partitions import apply_retention
    from tracking.schema import (
        ROLLUP_TOTALS,
        daily_feature_model_rollups,
        daily_user_rollups,
        rollup_keys,
    )
    from tracking.store import write_batch

    narrower = (daily_feature_model_rollups, daily_user_rollups)
    events = varied_events(300)  # from 2026-01-30 to 2026-02-02
    downgrade(engine, "0001")
    try:
        assert not {t.name for t in narrower} & set(inspect(engine).get_table_names())
        with monkeypatch.context() as m:  # a writer of 0001's time
            m.setattr(tracking.store, "ROLLUP_TABLES", (daily_rollups,))
            for name, only_new in (("_MOVE_ALL", False), ("_MOVE_NEW", True)):
                m.setattr(
                    tracking.pg_copy, name, tracking.pg_copy._move(only_new, (daily_rollups,))
                )
            with engine.begin() as conn:
                write_batch(conn, events[:200])
            with engine.begin() as conn:
                write_batch(conn, events[150:])
        with engine.connect() as conn:
            want = {t.name: rollups_from_calls(conn, rollup_keys(t)) for t in narrower}
        with engine.begin() as conn:
            removed = apply_retention(conn, keep_months=1, now=datetime(2026, 2, 10, tzinfo=UTC))
        # January goes; months before it may exist too, empty, made by other tests of this
        # session's database (the fixture empties tables, it drops no partition)
        assert (2026, 1) in removed.months and max(removed.months) == (2026, 1)
    finally:
        upgrade(engine)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(calls)).scalar_one() < 300
        for table in narrower:
            keys = rollup_keys(table)
            have = {
                tuple(r._mapping[k] for k in keys): {n: r._mapping[n] for n in ROLLUP_TOTALS}
                for r in conn.execute(select(table))
            }
            assert have == {key: dict(row) for key, row in want[table.name].items()}, table.name


def test_migration_0003_adds_the_audit_log_to_a_0002_store(engine) -> None:
    """A store at 0002 with calls in it, migrated: audit_log is there and empty, the calls and
    rollups are as they were, and a change can be recorded (JSON before and after)."""
    from tests.conftest import assert_rollups_equal_the_calls
    from tests.test_store import varied_events
    from tracking.audit import record_change
    from tracking.migrate import downgrade, upgrade
    from tracking.schema import audit_log
    from tracking.store import write_batch

    downgrade(engine, "0002")
    try:
        assert "audit_log" not in set(inspect(engine).get_table_names())
        with engine.begin() as conn:
            write_batch(conn, varied_events(50))
    finally:
        upgrade(engine)
    assert_rollups_equal_the_calls(engine)
    with engine.begin() as conn:
        assert conn.execute(select(func.count()).select_from(audit_log)).scalar_one() == 0
        record_change(conn, "cli", "reprice", "calls", "k", {"cost": "1.5"}, None, note="why")
    with engine.connect() as conn:
        row = conn.execute(select(audit_log)).one()
    assert (row.who, row.action, row.table_name, row.key) == ("cli", "reprice", "calls", "k")
    assert row.before == {"cost": "1.5"} and row.after is None and row.note == "why"
    assert row.at.tzinfo is not None


def test_the_migrations_build_exactly_what_the_metadata_describes(engine) -> None:
    """Alembic's autogenerate finds nothing to do: no table, column, type, index or key that
    tracking.schema has and the migrated store lacks, or the other way round (calls' monthly
    partitions aside)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from tracking.schema import postgresql_options

    known = {t.name for t in metadata.sorted_tables}

    def ours(_object, name, kind, _reflected, _compare_to) -> bool:
        return kind != "table" or name in known

    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            postgresql_options()
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "include_object": ours}
        )
        assert compare_metadata(context, metadata) == []


def test_migration_0004_adds_the_accounts_tables_to_a_0003_store(engine) -> None:
    """A store at 0003 with calls and an audit row, migrated: plans, customers, customer_users
    and revenue are there, empty, with their checks (USD only, a seat at least); nothing else
    moved. Downgrading removes them again."""
    import pytest
    from sqlalchemy.exc import IntegrityError

    from tests.conftest import assert_rollups_equal_the_calls
    from tests.test_store import varied_events
    from tracking.audit import record_change
    from tracking.migrate import downgrade, upgrade
    from tracking.schema import audit_log, customer_users, customers, plans, revenue
    from tracking.store import write_batch

    accounts = {"plans", "customers", "customer_users", "revenue"}
    downgrade(engine, "0003")
    try:
        assert not accounts & set(inspect(engine).get_table_names())
        with engine.begin() as conn:
            write_batch(conn, varied_events(50))
            record_change(conn, "cli", "edit", "prices", "gpt-4o", None, {"rate": "2.5"})
    finally:
        upgrade(engine)
    assert accounts <= set(inspect(engine).get_table_names())
    assert_rollups_equal_the_calls(engine)
    with engine.begin() as conn:
        assert conn.execute(select(func.count()).select_from(audit_log)).scalar_one() == 1
        for table in (plans, customers, customer_users, revenue):
            assert conn.execute(select(func.count()).select_from(table)).scalar_one() == 0
        conn.execute(insert(plans).values(name="pro", price=Decimal("20"), period="month",
                                          currency="USD"))  # fmt: skip
    checks = {c["name"] for c in inspect(engine).get_check_constraints("plans")}
    assert {"ck_plans_currency_usd", "ck_plans_period"} <= checks
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(insert(plans).values(name="eu", price=1, period="month", currency="EUR"))
    with engine.begin() as conn:
        conn.execute(plans.delete())


def test_migration_0006_adds_scenarios_and_alerts_sent_to_a_0005_store(engine) -> None:
    from tracking.migrate import downgrade, upgrade

    downgrade(engine, "0005")
    try:
        names = set(inspect(engine).get_table_names())
        assert "scenarios" not in names and "alerts_sent" not in names
        assert "budgets" in names
    finally:
        upgrade(engine)
    names = set(inspect(engine).get_table_names())
    assert {"scenarios", "alerts_sent"} <= names
    keys = inspect(engine).get_pk_constraint("alerts_sent")["constrained_columns"]
    assert keys == ["alert_key", "channel"]


def _time_indexes(conn) -> dict[str, tuple[str, list[str] | None, bool]]:
    """Each BRIN index on the calls and their partitions: {table: (index, options, valid)}."""
    rows = conn.execute(
        text(
            "SELECT t.relname, i.relname, i.reloptions, x.indisvalid FROM pg_index x"
            " JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid"
            " JOIN pg_am a ON a.oid = i.relam"
            " WHERE a.amname = 'brin' AND t.relname LIKE 'calls%'"
        )
    )
    return {table: (index, options, valid) for table, index, options, valid in rows}


@pytest.mark.postgres
def test_migration_0007_makes_the_time_index_summarize_each_range_as_it_fills(tmp_path) -> None:
    """A 0006 store with calls in two months: after 0007 the calls' BRIN index and each
    partition's copy are summarized as their ranges fill (without it a time range reads every
    page since the last VACUUM), named as before, and a month added later copies the option;
    every call is still there; the downgrade puts the option back."""
    import tracking
    from tracking.db import make_engine
    from tracking.migrate import downgrade, upgrade
    from tracking.partitions import ensure_months

    with new_pg_database("unitwise_brin") as url:
        engine = make_engine(url)
        try:
            upgrade(engine, "0006")
            tracking.configure(url=url, journal_path=str(tmp_path / "j.jsonl"))
            for month in (10, 11):
                for day in (1, 15):
                    at = datetime(2026, month, day, 12, tzinfo=UTC)
                    tracking.record(provider="openai", model="gpt-4o", occurred_at=at)
            assert tracking.flush(10)
            tracking.shutdown()
            with engine.connect() as conn:
                before = _time_indexes(conn)
            # the writer also made this month's and next month's partitions
            assert {"calls", "calls_y2026m10", "calls_y2026m11"} <= set(before)
            assert all(options is None for _, options, _ in before.values())

            upgrade(engine)
            with engine.begin() as conn:
                ensure_months(conn, [(2027, 3)])
            with engine.connect() as conn:
                after = _time_indexes(conn)
                attached = set(
                    conn.execute(
                        text(
                            "SELECT c.relname FROM pg_inherits i JOIN pg_class c"
                            " ON c.oid = i.inhrelid WHERE i.inhparent = CAST(:parent AS regclass)"
                        ),
                        {"parent": "ix_calls_occurred_at"},
                    ).scalars()
                )
                counted = conn.execute(select(func.count()).select_from(calls)).scalar_one()
            named = {table: f"{table}_occurred_at_idx" for table in before if table != "calls"}
            named |= {
                "calls": "ix_calls_occurred_at",
                "calls_y2027m03": "calls_y2027m03_occurred_at_idx",
            }
            assert after == {
                table: (index, ["autosummarize=on"], True) for table, index in named.items()
            }
            assert before["calls"][0] == "ix_calls_occurred_at"
            assert counted == 4
            # each partition's index belongs to the parent, so the planner prunes through it
            assert attached == {index for table, index in named.items() if table != "calls"}

            downgrade(engine, "0006")
            with engine.connect() as conn:
                down = _time_indexes(conn)
            assert {table: options for table, (_, options, _) in down.items()} == {
                table: ["autosummarize=off"] for table in after
            }
            upgrade(engine)
        finally:
            engine.dispose()


def test_head_is_the_newest_migration() -> None:
    from alembic.script import ScriptDirectory

    from tracking.migrate import alembic_config
    from tracking.revision import HEAD

    assert ScriptDirectory.from_config(alembic_config()).get_current_head() == HEAD


START_AND_RECORD = """
import sys, tracking
tracking.configure(url=sys.argv[1], journal_path=sys.argv[2], flush_interval=0.05)
tracking.record(provider="openai", model="gpt-4o", input_tokens=1000, output_tokens=10)
assert tracking.flush(30)
print("alembic" in sys.modules, tracking.stats()["written"])
tracking.shutdown()
"""


@pytest.mark.parametrize("at", ["head", "0006", None], ids=["current", "older", "new"])
def test_the_embedded_store_is_upgraded_only_when_it_is_not_current(tmp_path, at) -> None:
    """A writer starting on a current SQLite store writes without importing Alembic (its import
    and scripts held the first write back by 150-220 ms); an older store is still upgraded,
    a new one made, and both priced."""
    import subprocess
    import sys
    from pathlib import Path

    from tracking.catalogue_store import load_catalogue_if_empty
    from tracking.db import make_engine
    from tracking.migrate import upgrade
    from tracking.revision import HEAD

    url = f"sqlite:///{tmp_path / 'store.db'}"
    if at is not None:  # made as ``python -m tracking migrate`` makes it: with the catalogue
        upgrade(made := make_engine(url), at)
        with made.begin() as conn:
            load_catalogue_if_empty(conn)
        made.dispose()
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-c", START_AND_RECORD, url, str(tmp_path / "j.jsonl")],
        capture_output=True,
        text=True,
        cwd=root,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(at != "head"), "1"]
    eng = make_engine(url)
    with eng.connect() as conn:
        version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
        cost = conn.execute(select(calls.c.cost_usd)).scalar_one()
    eng.dispose()
    assert version == HEAD
    assert cost is not None and cost > 0
