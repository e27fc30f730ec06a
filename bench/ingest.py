"""Ingest: sustained calls per second written to PostgreSQL through the writer.

Beside it, a raw COPY of the same rows into the same (partitioned, indexed) calls table: the
floor no ORM-level path can beat. Events are built and priced up front, as the callers' threads
would, so the figure is the writer's alone.

    python -m bench.ingest [--calls 200000]
"""

from __future__ import annotations

import argparse
import io
import time

from bench.common import fresh_pg, make_events, price_events
from tracking.config import build_settings
from tracking.db import make_engine
from tracking.partitions import ensure_months, month_of
from tracking.pg_copy import COPY_COLUMNS, copy_text
from tracking.writer import Writer


def writer_rate(url: str, events, journal, connections: int) -> float:
    settings = build_settings(
        url, journal_path=journal, queue_size=len(events) + 1, write_connections=connections
    )
    writer = Writer(settings)
    writer.refresh_prices()
    started = time.perf_counter()
    for e in events:
        writer.put(e)
    assert writer.flush(600), writer.stats()
    elapsed = time.perf_counter() - started
    stats = writer.stats()
    writer.shutdown()
    assert stats["written"] == len(events), stats
    return len(events) / elapsed


def raw_copy_rate(url: str, events) -> float:
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("TRUNCATE calls, call_ids, daily_rollups")
        ensure_months(conn, {month_of(e.occurred_at) for e in events})
    texts = [copy_text(events[i : i + 5000]) for i in range(0, len(events), 5000)]
    sql = f"COPY calls ({', '.join(COPY_COLUMNS)}) FROM STDIN"
    started = time.perf_counter()
    for text in texts:
        with engine.begin() as conn:
            cursor = conn.connection.dbapi_connection.cursor()
            cursor.copy_expert(sql, io.StringIO(text))
            cursor.close()
    elapsed = time.perf_counter() - started
    engine.dispose()
    return len(events) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument(
        "--connections", type=int, default=2, help="the writer's write_connections (default 2)"
    )
    args = parser.parse_args()
    events = make_events(args.calls)
    import tempfile

    with fresh_pg() as url, tempfile.TemporaryDirectory() as tmp:
        price_events(url, events)
        unpriced = sum(e.cost_usd is None for e in events)
        writer = writer_rate(url, events, f"{tmp}/journal.jsonl", args.connections)
        raw = raw_copy_rate(url, events)
    print(f"calls: {args.calls:,} ({unpriced} unpriced)")
    print(f"writer -> PostgreSQL : {writer:10,.0f} calls/s ({args.connections} connection(s))")
    print(f"raw COPY (same rows) : {raw:10,.0f} rows/s (server side; serialisation excluded)")
    print(f"writer / raw COPY    : {writer / raw:10.0%}")


if __name__ == "__main__":
    main()
