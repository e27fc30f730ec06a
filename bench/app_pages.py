"""App pages: each page's SQL time and AppTest render time over N demo calls in PostgreSQL.

    python -m bench.app_pages --calls 1000000 [--days 60] [--runs 7]

Loads N demo calls (60 days, the reference price catalogue) into a fresh database, runs
VACUUM ANALYZE (what autovacuum does soon after any bulk load), then reports medians of:
- each page's SQL: the queries the page runs with the default filters (the last 30 days),
  called directly (no cache); the Users & margins page's over its default period (the last
  30 days) and the demo's customers (N / 400 users);
- each page rendered by AppTest from the entry script with an empty cache (SQL included), and
  again with a warm cache (what a user sees within the cache's ttl);
- beside them, a plain GROUP BY feature over the raw calls of the same 30 days: what a page
  would cost without the rollups.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from contextlib import nullcontext
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, func, select, text

from bench.common import fresh_pg
from dashboard import breakdown, demo, queries, raw_calls
from dashboard.filter_model import frame_window
from dashboard.queries import Filters
from tracking.db import make_engine
from tracking.schema import ROLLUP_TABLES, calls, daily_feature_model_rollups

ENTRY = str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py")


def default_filters() -> Filters:
    today = datetime.now(UTC).date()
    return Filters(today - timedelta(days=29), today)


def overview_parts(engine: Engine, f: Filters, in_range: int) -> dict[str, Callable[[], object]]:
    """The Overview's reads with the default filters (the sidebar's read is the same frame)."""
    window = f.with_dates(*frame_window(f, f.end))
    return {
        "store state (span, future-dated calls)": lambda: store_state(engine),
        "day_frame (range + this month)": lambda: queries.day_frame(engine, window),
        "yesterday up to now (raw calls)": lambda: yesterday_so_far(engine, f),
        "  the same late in the day (all yesterday)": lambda: yesterday_so_far(engine, f, True),
        "latency (sampled raw calls)": lambda: raw_calls.latency(engine, f, in_range),
        "unpriced models": lambda: queries.unpriced_models(engine, f),
        "top_users": lambda: queries.top_users(engine, f),
    }


def store_state(engine: Engine) -> None:
    """What ``data.store_state`` reads: the span, and the calls dated more than a day ahead."""
    queries.store_span(engine)
    raw_calls.calls_after(engine, datetime.now(UTC) + timedelta(days=1))


def yesterday_so_far(engine: Engine, f: Filters, whole_day: bool = False) -> None:
    """Yesterday up to the time it is now (``whole_day``: as just before midnight UTC, the
    most calls this read ever sums)."""
    now = datetime.now(UTC)
    midnight = datetime.combine(now.date() - timedelta(days=1), datetime.min.time(), UTC)
    until = midnight + timedelta(days=1) if whole_day else now - timedelta(days=1)
    raw_calls.cost_between(engine, f, midnight, until)


def overview_sql(engine: Engine, f: Filters) -> None:
    """What the page runs, in its order: the calls in range come from the frame."""
    store_state(engine)
    frame = queries.day_frame(engine, f.with_dates(*frame_window(f, f.end)))
    yesterday_so_far(engine, f, whole_day=True)  # its worst case: late in the UTC day
    in_range = breakdown.totals(breakdown.between(frame, f.start, f.end)).calls
    raw_calls.latency(engine, f, in_range)
    queries.unpriced_models(engine, f)
    queries.top_users(engine, f)


def costs_sql(engine: Engine, f: Filters) -> None:
    """Costs grouped by user: the sidebar's frame plus the per-user read (with its totals)."""
    store_state(engine)
    queries.day_frame(engine, f.with_dates(*frame_window(f, f.end)))
    queries.cost_by(engine, f, "user")


def costs_by_feature_sql(engine: Engine, f: Filters) -> None:
    """Costs grouped by feature, provider, model or day: the sidebar's frame only."""
    store_state(engine)
    queries.day_frame(engine, f.with_dates(*frame_window(f, f.end)))


def drill_feature_sql(engine: Engine, f: Filters) -> None:
    raw_calls.drill_down(engine, f, "feature", "chat", page=0)


def drill_user_sql(engine: Engine, f: Filters) -> None:
    raw_calls.drill_down(engine, f, "user", "user_0000", page=3)


def margins_sql(engine: Engine, f: Filters) -> None:
    """The Users & margins page's reads for the period: the margins (accounts, each user's
    cost per term from the per-user rollup, and the weekly cost per active user), the worst
    customers' costliest features and models, and one customer's detail."""
    from decimal import Decimal

    from dashboard import margin_data
    from dashboard.economics import below_margin

    with engine.connect() as conn:
        report = margin_data.margins_report(
            conn, f.start, f.end, Decimal("2.9"), Decimal(0), Decimal(60)
        )
        worst = [m.customer_id for m in below_margin(report.customers, Decimal(20))[:20]]
        margin_data.top_spend(conn, worst, f.start, f.end, "feature")
        margin_data.top_spend(conn, worst, f.start, f.end, "model")
        if report.customers:
            margin_data.customer_detail(conn, report.customers[0].customer_id, f.start, f.end)


def raw_group_by(engine: Engine, f: Filters) -> None:
    c = calls.c
    query = (
        select(c.feature, func.count(), func.sum(c.cost_usd))
        .where(*raw_calls.calls_where(f, engine.dialect.name))
        .group_by(c.feature)
    )
    with engine.connect() as conn:
        conn.execute(query).all()


def median_ms(fn: Callable[[], object], runs: int) -> float:
    fn()  # warm the connection pool and PostgreSQL's buffers
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def render_ms(url: str, page: str | None, runs: int, warm: bool) -> float:
    import logging

    from streamlit.testing.v1 import AppTest

    logging.getLogger("streamlit").setLevel(logging.ERROR)

    os.environ["UNITWISE_DATABASE_URL"] = url
    forget = _forget()
    samples = []
    for i in range(runs + 1):
        at = AppTest.from_file(ENTRY, default_timeout=120)
        if page:
            at.run()
            if not warm:
                forget()
            started = time.perf_counter()
            at.switch_page(f"../pages/{page}.py").run()
        else:
            if not warm:
                forget()
            started = time.perf_counter()
            at.run()
        elapsed = (time.perf_counter() - started) * 1000
        assert not at.exception, at.exception
        if i:  # the first run imports and connects
            samples.append(elapsed)
    return statistics.median(samples)


def render_cpu_ms(url: str, page: str, runs: int) -> tuple[float, float]:
    """The page's cold render as (CPU ms of its script thread, wall ms), medians of ``runs``.

    On a machine shared with other work the wall time of a render moves 2-3x from run to run
    (the script waits for a core); the CPU time its thread spends moves little, so two trees
    compare on it. The store's own time is in the wall time only."""
    import logging

    from streamlit.runtime.scriptrunner import script_runner
    from streamlit.testing.v1 import AppTest

    logging.getLogger("streamlit").setLevel(logging.ERROR)
    os.environ["UNITWISE_DATABASE_URL"] = url
    forget = _forget()
    spent: list[tuple[float, float]] = []
    run_script = script_runner.ScriptRunner._run_script

    def timed(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        cpu, wall = time.thread_time(), time.perf_counter()
        try:
            return run_script(self, *args, **kwargs)
        finally:
            spent.append(((time.thread_time() - cpu) * 1000, (time.perf_counter() - wall) * 1000))

    script_runner.ScriptRunner._run_script = timed  # type: ignore[method-assign]
    samples = []
    try:
        for i in range(runs + 1):
            at = AppTest.from_file(ENTRY, default_timeout=120)
            at.run()
            forget()
            at.switch_page(f"../pages/{page}.py").run()
            assert not at.exception, at.exception
            if i:  # the first run imports and connects
                samples.append(spent[-1])
    finally:
        script_runner.ScriptRunner._run_script = run_script  # type: ignore[method-assign]
    return statistics.median(c for c, _ in samples), statistics.median(w for _, w in samples)


def _forget() -> Callable[[], None]:
    """What empties the app's caches: ``dashboard.cache.forget``, or in a tree from before
    it (``--before``) ``st.cache_data.clear``."""
    try:
        from dashboard.cache import forget
    except ImportError:
        import streamlit as st

        return st.cache_data.clear
    return forget


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--url", help="measure a store already loaded (no fresh database)")
    args = parser.parse_args()
    with fresh_pg(catalogue=True) if not args.url else nullcontext(args.url) as url:
        engine = make_engine(url)
        started = time.perf_counter()
        if not args.url:
            demo.load(engine, args.calls, args.days, demo.DEFAULT_SEED)
        load_s = time.perf_counter() - started
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
            rows = {
                t.name: conn.execute(select(func.count()).select_from(t)).scalar_one()
                for t in ROLLUP_TABLES
            }
            stored = conn.execute(select(func.sum(daily_feature_model_rollups.c.calls))).scalar()
        f = default_filters()
        in_range = queries.totals(engine, f).calls
        loaded = f"{args.days} days, loaded in {load_s:.1f} s" if not args.url else "as stored"
        print(f"calls: {int(stored or 0):,} ({loaded}); in the last 30 days: {in_range:,}")
        print("rollup rows: " + ", ".join(f"{name} {n:,}" for name, n in rows.items()))
        print(f"{'SQL (median of ' + str(args.runs) + ')':<40} {'ms':>9}")
        for name, fn in (
            ("Overview page SQL", overview_sql),
            ("Costs page SQL (by feature: the default)", costs_by_feature_sql),
            ("Costs page SQL (by user)", costs_sql),
            ("drill-down: feature chat, page 1", drill_feature_sql),
            ("drill-down: top user, page 4", drill_user_sql),
            ("Users & margins page SQL", margins_sql),
            ("plain GROUP BY feature over raw calls", raw_group_by),
        ):
            print(f"{name:<40} {median_ms(lambda fn=fn: fn(engine, f), args.runs):9.1f}")
        print("Overview SQL, query by query:")
        for name, part in overview_parts(engine, f, in_range).items():
            print(f"  {name:<38} {median_ms(part, args.runs):9.1f}")
        engine.dispose()
        print(f"{'AppTest render (median of ' + str(args.runs) + ')':<40} {'cold':>9} {'warm':>9}")
        for name, page in (("Overview", None), ("Costs", "costs"), ("Users & margins", "users")):
            cold = render_ms(url, page, args.runs, warm=False)
            warm = render_ms(url, page, args.runs, warm=True)
            print(f"{name:<40} {cold:9.1f} {warm:9.1f}")


if __name__ == "__main__":
    main()
