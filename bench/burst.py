"""Burst: 25,000 calls recorded as fast as one thread can, default settings, into PostgreSQL.

Every one must be stored: the figure is how many were, how long the host thread spent per call,
and how long until the last one was in the store.

    python -m bench.burst [--calls 25000]
"""

from __future__ import annotations

import argparse
import tempfile
import time

from sqlalchemy import func, select

import tracking
from bench.common import fresh_pg
from tracking.db import make_engine
from tracking.schema import calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=25_000)
    args = parser.parse_args()
    with fresh_pg() as url, tempfile.TemporaryDirectory() as tmp:
        tracking.configure(url=url, journal_path=f"{tmp}/journal.jsonl")  # defaults otherwise
        started = time.perf_counter()
        with tracking.attribute(user_id="u_1", feature="chat"):
            for i in range(args.calls):
                tracking.record(
                    provider="openai", model="gpt-4o", input_tokens=100 + i % 900, output_tokens=50
                )
        recorded = time.perf_counter() - started
        assert tracking.flush(120)
        stored_after = time.perf_counter() - started
        stats = tracking.stats()
        tracking.shutdown()
        engine = make_engine(url)
        with engine.connect() as conn:
            stored = conn.execute(select(func.count()).select_from(calls)).scalar_one()
        engine.dispose()
    print(
        f"recorded {args.calls:,} calls in {recorded * 1000:.0f} ms "
        f"({recorded / args.calls * 1e6:.1f} µs per call on the host thread)"
    )
    print(
        f"stored {stored:,} of {args.calls:,} ({stored / args.calls:.1%}); "
        f"dropped {stats['dropped']}, spilled {stats['spilled']}; "
        f"all stored {stored_after:.2f} s after the first call"
    )


if __name__ == "__main__":
    main()
