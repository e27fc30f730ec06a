"""Writing batches: every field round-trips, and every rollup always equals the raw calls."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select

from tests.conftest import assert_rollups_equal_the_calls
from tracking.events import CallEvent
from tracking.schema import (
    ROLLUP_TABLES,
    ROLLUP_TOTALS,
    calls,
    daily_feature_model_rollups,
    daily_user_rollups,
)
from tracking.store import prepare_batch, regroup, rollup_rows, write_batch


def varied_events(n: int, seed: int = 5) -> list[CallEvent]:
    rng = random.Random(seed)
    start = datetime(2026, 1, 30, 20, tzinfo=UTC)  # crosses a month boundary
    events = []
    for _ in range(n):
        inp = rng.choice([None, rng.randint(0, 5000)])
        events.append(
            CallEvent(
                id=uuid.uuid4(),
                occurred_at=start + timedelta(minutes=rng.randint(0, 60 * 72)),
                provider=rng.choice(["openai", "anthropic"]),
                model=rng.choice(["gpt-4o", "claude-x"]),
                user_id=rng.choice([None, "u1", "u2", "ünïcode\tuser", "back\\slash\r\nuser"]),
                feature=rng.choice([None, "chat", "search"]),
                status=rng.choice(["ok", "ok", "error"]),
                error_type=None,
                input_tokens=inp,
                cache_read_tokens=(inp // 3) if inp else None,
                output_tokens=rng.choice([None, rng.randint(0, 900)]),
                reasoning_tokens=rng.choice([None, 0]),
                duration_ms=rng.choice([None, rng.randint(1, 5000)]),
                cost_usd=rng.choice([None, Decimal(rng.randint(0, 10**9)) / Decimal(10**9)]),
                units=rng.choice([None, {"audio_seconds": 12.5}, {"requests": 1}]),
                tags=rng.choice([None, {"team": "growth", "quote": 'a "b" \\ c\nd'}]),
                environment=rng.choice([None, "prod"]),
                batch=rng.random() < 0.2,
            )
        )
    return events


def test_every_field_round_trips(engine) -> None:
    events = varied_events(60)
    with engine.begin() as conn:
        assert write_batch(conn, events) == 60
    with engine.connect() as conn:
        stored = {r.id: r for r in conn.execute(select(calls))}
    for e in events:
        row = stored[e.id]
        assert row._mapping == {**row._mapping, **e.to_row()}, e.id


def test_every_rollup_equals_the_raw_calls_after_retries_and_duplicates(engine) -> None:
    events = varied_events(400)
    with engine.begin() as conn:
        write_batch(conn, events[:250])
    with engine.begin() as conn:  # overlapping retry: only the new 150 count
        write_batch(conn, prepare_batch(events[200:], engine.dialect.name == "postgresql"))
    with engine.begin() as conn:  # a replay of everything, each call twice in the batch
        assert write_batch(conn, events + events) == 0
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(calls)).scalar_one() == 400
        for table in ROLLUP_TABLES:  # each sums the same calls and the same cost
            total = conn.execute(select(func.sum(table.c.calls), func.sum(table.c.cost_usd)))
            assert total.one() == (400, sum(e.cost_usd or 0 for e in events)), table.name
    assert_rollups_equal_the_calls(engine)


def test_rollup_keys_cover_calls_without_user_or_feature(engine) -> None:
    events = [e for e in varied_events(200) if e.user_id is None or e.feature is None]
    with engine.begin() as conn:
        write_batch(conn, events)
    with engine.connect() as conn:
        users = set(conn.execute(select(daily_user_rollups.c.user_id)).scalars())
        features = set(conn.execute(select(daily_feature_model_rollups.c.feature)).scalars())
    assert "" in users and "" in features
    assert_rollups_equal_the_calls(engine)


def test_regroup_sums_the_finest_rollup_into_a_narrower_one() -> None:
    rows = rollup_rows(varied_events(300))
    by_user = regroup(rows, ("day", "user_id"))
    assert [(r["day"], r["user_id"]) for r in by_user] == sorted(
        {(r["day"], r["user_id"]) for r in rows}
    )
    for name in ROLLUP_TOTALS:
        assert sum(r[name] for r in by_user) == sum(r[name] for r in rows), name
    assert rows[0] is not by_user[0] and rows == rollup_rows(varied_events(300))  # untouched


def test_an_embedded_store_connection_uses_wal_and_caps_its_size(tmp_path) -> None:
    from sqlalchemy import text

    from tracking.db import make_engine

    engine = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA journal_size_limit")).scalar() == 64 * 1024 * 1024
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 10000
    engine.dispose()
