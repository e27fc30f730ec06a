"""Shared set-up for the benchmarks: a fresh PostgreSQL database, events, the store's prices."""

from __future__ import annotations

import os
import random
import statistics
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tracking.db import make_engine, normalize_url
from tracking.events import CallEvent
from tracking.migrate import upgrade

ADMIN_URL = os.environ.get(
    "UNITWISE_BENCH_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)


@contextmanager
def fresh_pg(catalogue: bool = True) -> Iterator[str]:
    """A new, migrated PostgreSQL database (with the price catalogue), dropped afterwards."""
    name = f"unitwise_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(normalize_url(ADMIN_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(normalize_url(ADMIN_URL)).set(database=name)
    rendered = url.render_as_string(hide_password=False)
    engine = make_engine(rendered)
    upgrade(engine)
    if catalogue:
        from tracking.catalogue import load_catalogue

        with engine.begin() as conn:
            load_catalogue(conn)
    engine.dispose()
    try:
        yield rendered
    finally:
        with admin.connect() as conn:
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = :n AND pid <> pg_backend_pid()"
                ),
                {"n": name},
            )
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


MODELS = [
    ("openai", "gpt-4o"),
    ("openai", "gpt-4o-mini"),
    ("anthropic", "claude-3-5-sonnet-20241022"),
    ("google", "gemini-1.5-pro"),
]


def make_events(n: int, days: int = 7, seed: int = 1) -> list[CallEvent]:
    """Realistic-looking calls spread over the last ``days`` days, 200 users, 6 features."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    features = ["chat", "summarize", "search", "transcribe", "speech", "embeddings"]
    events = []
    for _ in range(n):
        provider, model = rng.choice(MODELS)
        inp = rng.randint(50, 4000)
        events.append(
            CallEvent(
                id=uuid.uuid4(),
                occurred_at=now - timedelta(seconds=rng.randint(0, days * 86400)),
                provider=provider,
                model=model,
                user_id=f"u_{rng.randint(1, 200)}",
                feature=rng.choice(features),
                input_tokens=inp,
                cache_read_tokens=inp // 2 if rng.random() < 0.3 else 0,
                output_tokens=rng.randint(10, 800),
                duration_ms=rng.randint(100, 4000),
                tags={"team": "growth"},
            )
        )
    return events


def median_us(samples_ns: list[int]) -> float:
    return statistics.median(samples_ns) / 1000
