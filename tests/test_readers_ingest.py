"""Readers while the writer ingests (issue 20): app sessions running the pages' SQL while host
threads record calls as fast as they can, on both stores.

What must hold: no reader ever fails (on SQLite, "database is locked" must never reach a page);
the writer never fails a batch because of them, and every call is stored exactly once; and every
read sees whole batches: one statement's count of the calls equals each rollup's count and cost
at every moment of the ingest (a batch's calls and rollups commit together), the pages' totals
never go back, and once flushed the rollups equal the sums over the calls.

Speed is not asserted here (``python -m bench.readers`` measures it). ``UNITWISE_READERS_SECONDS``
(default 3) sets how long the host threads record.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections import Counter
from decimal import Decimal

import pytest
from sqlalchemy import Engine, create_engine, func, select

import tracking
from bench.app_pages import (
    costs_by_feature_sql,
    costs_sql,
    default_filters,
    margins_sql,
    overview_sql,
)
from dashboard import demo, queries
from tests.conftest import add_test_prices, assert_rollups_equal_the_calls
from tracking.db import make_engine, normalize_url
from tracking.schema import ROLLUP_TABLES, call_ids, calls

SECONDS = float(os.environ.get("UNITWISE_READERS_SECONDS", "3"))
HOSTS = 2
SESSIONS = 3
PAGES = (overview_sql, costs_by_feature_sql, costs_sql, margins_sql)
RUN = uuid.uuid4().int >> 64 << 64  # this run's calls: ids RUN + host << 32 + number


def call_id(host: int, n: int) -> uuid.UUID:
    return uuid.UUID(int=RUN + (host << 32) + n)


def app_engine(url: str) -> Engine:
    """The engine the app reads through: ``st.connection("sql")`` makes it with a plain
    ``create_engine(url)`` (so on SQLite: no busy_timeout pragma, sqlite3's own 5 s wait)."""
    return create_engine(normalize_url(url))


def record_at_full_speed(host: int, until: float, recorded: list[int]) -> None:
    n = 0
    while time.monotonic() < until:
        with tracking.attribute(user_id=f"u_{n % 50}", feature=("chat", "search")[n % 2]):
            tracking.record(
                provider="openai",
                model="gpt-4o",
                input_tokens=100 + n % 900,
                cache_read_tokens=n % 50,
                output_tokens=10 + n % 300,
                call_id=call_id(host, n),
            )
        n += 1
    recorded[host] = n


def snapshot(engine: Engine) -> tuple:
    """The calls' count and cost, and each rollup's, read by one statement: one snapshot of
    the store on both (a statement never sees half of a transaction)."""
    subqueries = [select(func.count()).select_from(calls).scalar_subquery()]
    subqueries.append(select(func.coalesce(func.sum(calls.c.cost_usd), 0)).scalar_subquery())
    for table in ROLLUP_TABLES:
        subqueries.append(select(func.coalesce(func.sum(table.c.calls), 0)).scalar_subquery())
        subqueries.append(select(func.coalesce(func.sum(table.c.cost_usd), 0)).scalar_subquery())
    with engine.connect() as conn:
        row = conn.execute(select(*subqueries)).one()
    return tuple(Decimal(v) for v in row)


@pytest.mark.slow  # 17-25 s a store on the 2-core machine, most of it the writer catching up
def test_readers_while_the_writer_ingests(store_url: str, tmp_path) -> None:
    add_test_prices(store_url)
    engine = make_engine(store_url)
    demo.load(engine, 5_000, 30, seed=5)  # customers and a month of history for the pages
    (demo_calls,) = snapshot(engine)[:1]
    reader = app_engine(store_url)
    f = default_filters()
    for page in PAGES:  # the pages' SQL works on this store before the ingest starts
        page(reader, f)

    tracking.configure(
        url=store_url, journal_path=str(tmp_path / "journal.jsonl"), queue_size=1_000_000
    )
    stop = threading.Event()
    errors: list[str] = []
    snapshots: list[tuple] = []
    page_totals: list[list[int]] = [[] for _ in range(SESSIONS)]

    def session(number: int) -> None:
        """An app session: its pages in turn, the page's totals read after each."""
        i = number
        while not stop.is_set():
            try:
                PAGES[i % len(PAGES)](reader, f)
                page_totals[number].append(queries.totals(reader, f).calls)
            except Exception as exc:  # what a page would show as an error
                errors.append(f"{type(exc).__name__}: {exc}"[:500])
            i += 1

    def watcher() -> None:
        while not stop.is_set():
            try:
                snapshots.append(snapshot(reader))
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}"[:500])

    readers = [threading.Thread(target=session, args=(n,)) for n in range(SESSIONS)]
    readers.append(threading.Thread(target=watcher))
    for t in readers:
        t.start()
    recorded = [0] * HOSTS
    until = time.monotonic() + SECONDS
    hosts = [
        threading.Thread(target=record_at_full_speed, args=(h, until, recorded))
        for h in range(HOSTS)
    ]
    try:
        for t in hosts:
            t.start()
        for t in hosts:
            t.join()
        assert tracking.flush(120), tracking.stats()
    finally:
        stop.set()
        for t in readers:
            t.join()
    stats = tracking.stats()
    tracking.shutdown()

    assert not errors, f"{len(errors)} reads failed, e.g. {errors[:3]}"
    for name in ("dropped", "rejected", "write_failures", "journal_pending"):
        assert not stats[name], (name, stats)

    # the reads ran while the store was changing, and every one saw whole batches
    seen_counts = {s[0] for s in snapshots}
    assert len(seen_counts) >= 3, f"the readers saw too few states of the ingest: {seen_counts}"
    for s in snapshots:
        counts, costs = s[0::2], s[1::2]
        assert len(set(counts)) == 1 and len(set(costs)) == 1, f"a half-seen batch: {s}"
    for totals in page_totals:
        assert totals, "a session never finished a page"
        assert totals == sorted(totals), "a page's totals went back"

    # every call once, nothing else; the rollups equal the sums over the calls
    want = {call_id(h, n) for h in range(HOSTS) for n in range(recorded[h])}
    with engine.connect() as conn:
        ids = Counter(i for i in conn.execute(select(calls.c.id)).scalars() if i in want)
        guards = conn.execute(select(func.count()).select_from(call_ids)).scalar_one()
    doubled = [i for i, n in ids.items() if n > 1]
    assert not doubled, f"{len(doubled)} calls stored twice"
    assert set(ids) == want, f"{len(want - set(ids))} of {len(want)} calls lost"
    final = snapshot(engine)
    assert final[0] == demo_calls + len(want) == guards, (final, demo_calls, len(want), guards)
    assert_rollups_equal_the_calls(engine)
    reads = sum(len(t) for t in page_totals)
    print(f"\n{len(want):,} calls, {reads} page reads and {len(snapshots)} snapshots meanwhile")
    assert queries.totals(reader, f).calls >= max(max(t) for t in page_totals)
    reader.dispose()
    engine.dispose()
