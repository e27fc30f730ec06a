"""The migrations build the schema that tracking.schema describes, on both stores."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import func, insert, inspect, select

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
