"""Shared set-up for the benchmarks: a fresh PostgreSQL database, events, the store's prices."""

from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from tracking.db import make_engine, normalize_url
from tracking.events import CallEvent, uuid7
from tracking.migrate import upgrade

ADMIN_URL = os.environ.get(
    "UNITWISE_BENCH_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)


@contextmanager
def fresh_pg(catalogue: bool = False) -> Iterator[str]:
    """A new, migrated PostgreSQL database (with the price catalogue), dropped afterwards."""
    name = f"unitwise_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(normalize_url(ADMIN_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(normalize_url(ADMIN_URL)).set(database=name)
    rendered = url.render_as_string(hide_password=False)
    engine = make_engine(rendered)
    upgrade(engine)
    with engine.begin() as conn:
        if catalogue:
            from tracking.catalogue_store import load_catalogue

            load_catalogue(conn)
        else:  # the few models the benchmarks use, at their list prices
            add_bench_prices(conn)
    engine.dispose()
    try:
        yield rendered
    finally:
        drop_database(admin, name)


def drop_database(admin: Engine, name: str) -> None:
    """Drop a benchmark's database (its connections ended first) and let go of ``admin``."""
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


def add_bench_prices(conn) -> None:
    from decimal import Decimal

    from tracking.price_store import RateRow, add_version

    start = datetime(2024, 1, 1, tzinfo=UTC)
    per_m = 1_000_000
    for provider, model, rates in [
        (
            "openai",
            "gpt-4o",
            (("input_tokens", "2.5"), ("cache_read_tokens", "1.25"), ("output_tokens", "10")),
        ),
        (
            "openai",
            "gpt-4o-mini",
            (("input_tokens", "0.15"), ("cache_read_tokens", "0.075"), ("output_tokens", "0.6")),
        ),
        (
            "anthropic",
            "claude-3-5-sonnet-20241022",
            (("input_tokens", "3"), ("cache_read_tokens", "0.3"), ("output_tokens", "15")),
        ),
        ("google", "gemini-1.5-pro", (("input_tokens", "1.25"), ("output_tokens", "5"))),
    ]:
        add_version(
            conn,
            provider,
            model,
            start,
            [RateRow(unit, Decimal(rate), per_m) for unit, rate in rates],
            source="bench",
        )
    add_version(
        conn,
        "openai",
        "whisper-1",
        start,
        [RateRow("audio_seconds", Decimal("0.006"), 60)],
        source="bench",
    )


MODELS = [
    ("openai", "gpt-4o"),
    ("openai", "gpt-4o-mini"),
    ("anthropic", "claude-3-5-sonnet-20241022"),
    ("google", "gemini-1.5-pro"),
]


def make_events(n: int, spread_seconds: int = 3600, seed: int = 1) -> list[CallEvent]:
    """Live-looking calls of the last ``spread_seconds``: 2,000 users with heavy-tailed usage,
    each on one or two of six features, each feature on its own model."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    features = {
        "chat": MODELS[0],
        "summarize": MODELS[2],
        "search": MODELS[1],
        "transcribe": MODELS[3],
        "speech": MODELS[1],
        "embeddings": MODELS[1],
    }
    names = list(features)
    users = [(f"u_{i}", rng.sample(names, rng.choice((1, 2)))) for i in range(2000)]
    weights = [1 / (rank + 1) ** 1.1 for rank in range(len(users))]
    picks = rng.choices(users, weights=weights, k=n)
    events = []
    for user, user_features in picks:
        feature = rng.choice(user_features)
        provider, model = features[feature]
        inp = rng.randint(50, 4000)
        events.append(
            CallEvent(
                id=uuid7(),
                occurred_at=now - timedelta(seconds=rng.randint(0, spread_seconds)),
                provider=provider,
                model=model,
                user_id=user,
                feature=feature,
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


def start_tracking(url: str, journal_dir: str, queue_size: int | None = None) -> None:
    """Configure tracking on a benchmark's store and wait for its prices: a figure taken
    before they load would time unpriced calls."""
    import tracking

    tracking.configure(url=url, journal_path=f"{journal_dir}/journal.jsonl", queue_size=queue_size)
    tracking.record(provider="openai", model="gpt-4o", input_tokens=1)
    tracking.flush(30)
    assert tracking.stats()["prices_loaded"]


def finish_tracking() -> None:
    """Flush and stop tracking after a benchmark, and say what reached the store: a figure
    from a run that dropped or rejected calls would not be the figure it claims."""
    import tracking

    assert tracking.flush(60)
    stats = tracking.stats()
    tracking.shutdown()
    print(f"written {stats['written']:,}, dropped {stats['dropped']}, rejected {stats['rejected']}")


def run_in_checkout(code: str, directory: str, *args: str, package: str) -> dict[str, Any]:
    """Run ``code`` (``python -c``) in a child process in ``directory``'s checkout, with it first
    on the path, and return the JSON object its last line prints. That object names the file
    of ``package`` it imported (a key of that name), checked to be the checkout's own."""
    out = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=directory,
        env=dict(os.environ, PYTHONPATH=directory),
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    found: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    assert found.pop(package).startswith(directory), f"the child did not import DIR's {package}"
    return found


def price_events(url: str, events: list[CallEvent]) -> None:
    """Price ``events`` in place with the store's price book, as a tracker would before
    queueing them (untimed set-up for benchmarks that time only the writing)."""
    from tracking.pricing import load_price_book, price_event

    engine = make_engine(url)
    with engine.connect() as conn:
        book = load_price_book(conn)
    engine.dispose()
    for event in events:
        price_event(book, event)
