"""Writing batches: every field round-trips, and the rollups always equal the raw calls."""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import select

from tracking.events import CallEvent
from tracking.schema import calls, daily_rollups
from tracking.store import prepare_batch, write_batch


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


def test_rollups_equal_the_raw_calls(engine) -> None:
    events = varied_events(400)
    with engine.begin() as conn:
        write_batch(conn, events[:250])
    with engine.begin() as conn:  # overlapping retry: only the new 150 count
        write_batch(conn, prepare_batch(events[200:], engine.dialect.name == "postgresql"))
    with engine.connect() as conn:
        raw = conn.execute(select(calls)).all()
        rollups = conn.execute(select(daily_rollups)).all()
    expected: dict[tuple, dict[str, object]] = defaultdict(lambda: defaultdict(int))
    for r in raw:
        key = (r.occurred_at.date(), r.user_id or "", r.feature or "", r.provider, r.model)
        row = expected[key]
        row["calls"] += 1
        row["error_calls"] += r.status != "ok"
        row["unpriced_calls"] += r.cost_usd is None
        row["cost_usd"] += r.cost_usd or Decimal(0)
        for name in (
            "input_tokens",
            "output_tokens",
            "cache_read_tokens",
            "cache_write_tokens",
            "reasoning_tokens",
        ):
            row[name] += getattr(r, name) or 0
        row["duration_ms_sum"] += r.duration_ms or 0
    assert len(raw) == 400
    got = {(r.day, r.user_id, r.feature, r.provider, r.model): r for r in rollups}
    assert set(got) == set(expected)
    for key, want in expected.items():
        have = got[key]._mapping
        for name, value in want.items():
            assert have[name] == value, (key, name)
    assert sum(r.cost_usd for r in rollups) == sum(r.cost_usd or 0 for r in raw)
