"""Store administration: URL normalisation, the CLI's migrate, retention of old months."""

from __future__ import annotations

import subprocess
import sys
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, inspect, select

from tracking.db import describe_url, normalize_url
from tracking.events import CallEvent
from tracking.partitions import apply_retention, existing_months
from tracking.schema import ROLLUP_TABLES, call_ids, calls
from tracking.store import write_batch


@pytest.mark.parametrize(
    ("given", "driver"),
    [
        ("postgres://u:p@db.example.com:5432/app", "postgresql+psycopg2"),
        ("postgresql://u:p@db.example.com/app", "postgresql+psycopg2"),
        ("postgresql+psycopg2://u@h/app", "postgresql+psycopg2"),
        ("sqlite:////tmp/x.db", "sqlite"),
    ],
)
def test_hosting_provider_urls_use_the_shipped_driver(given: str, driver: str) -> None:
    assert normalize_url(given).drivername == driver


def test_describe_url_never_shows_the_password() -> None:
    line = describe_url("postgres://alice:s3cret@db.example.com:5432/app")
    assert line == "PostgreSQL at db.example.com/app"
    assert "s3cret" not in line


def test_plain_postgresql_url_connects(pg_url: str) -> None:
    from tracking.db import make_engine

    plain = pg_url.replace("postgresql+psycopg2://", "postgresql://")
    engine = make_engine(plain)
    with engine.connect() as conn:
        assert conn.dialect.driver == "psycopg2"
    engine.dispose()


def test_cli_migrate_builds_a_new_store(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    done = subprocess.run(
        [sys.executable, "-m", "tracking", "migrate", "--url", url, "--no-catalogue"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "Migrated SQLite at" in done.stdout
    from tracking.db import make_engine

    engine = make_engine(url)
    assert {"calls", "daily_rollups", "prices"} <= set(inspect(engine).get_table_names())
    engine.dispose()


def test_cli_reports_an_unreachable_store_in_one_line() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tracking",
            "migrate",
            "--url",
            "postgresql://postgres@127.0.0.1:1/nowhere",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("error: OperationalError")
    assert "Traceback" not in done.stderr


def _event(month: int, year: int = 2026) -> CallEvent:
    return CallEvent(
        id=uuid.uuid4(),
        occurred_at=datetime(year, month, 15, tzinfo=UTC),
        provider="openai",
        model="gpt-4o",
        input_tokens=10,
    )


def test_retention_drops_old_months_and_keeps_rollups(engine) -> None:
    events = [_event(m) for m in (1, 2, 3, 4, 5, 6) for _ in range(3)]
    with engine.begin() as conn:
        write_batch(conn, events)
    with engine.begin() as conn:
        result = apply_retention(conn, keep_months=3, now=datetime(2026, 6, 20, tzinfo=UTC))
    assert result.months == [(2026, 1), (2026, 2), (2026, 3)]
    with engine.connect() as conn:
        kept = conn.execute(select(func.count()).select_from(calls)).scalar_one()
        ids = conn.execute(select(func.count()).select_from(call_ids)).scalar_one()
        rolled = {
            conn.execute(select(func.sum(table.c.calls))).scalar_one() for table in ROLLUP_TABLES
        }
        if engine.dialect.name == "postgresql":
            months = existing_months(conn)
            assert {(2026, 4), (2026, 5), (2026, 6)} <= months
            assert not [m for m in months if m < (2026, 4)]
    assert (kept, ids, rolled) == (9, 9, {18})  # every rollup keeps the removed months
    # an id of a removed month may be recorded again: it lands as a new call
    with engine.begin() as conn:
        assert write_batch(conn, [events[0]]) == 1


def test_retention_archives_partitions_on_postgres(pg_url: str) -> None:
    from tracking.db import make_engine
    from tracking.migrate import upgrade

    engine = make_engine(pg_url)
    upgrade(engine)
    with engine.begin() as conn:
        for table in (calls, call_ids, *ROLLUP_TABLES):
            conn.execute(table.delete())
        write_batch(conn, [_event(1, 2020), _event(2, 2020)])
    with engine.begin() as conn:
        result = apply_retention(
            conn, keep_months=1, now=datetime(2020, 2, 10, tzinfo=UTC), archive=True
        )
    assert result.archived and result.months == [(2020, 1)]
    with engine.begin() as conn:
        assert conn.execute(select(func.count()).select_from(calls)).scalar_one() == 1
        assert "calls_y2020m01" in inspect(conn).get_table_names()
        conn.exec_driver_sql("DROP TABLE calls_y2020m01")
        conn.execute(calls.delete())
    engine.dispose()


def test_retention_refuses_nonsense(engine) -> None:
    with engine.begin() as conn, pytest.raises(ValueError, match="keep_months"):
        apply_retention(conn, keep_months=0)
    if engine.dialect.name == "sqlite":
        with engine.begin() as conn, pytest.raises(ValueError, match="PostgreSQL"):
            apply_retention(conn, keep_months=1, archive=True)
