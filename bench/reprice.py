"""Reprice: calls per second that ``tracking.reprice.apply_reprice`` reprices on PostgreSQL.

    python -m bench.reprice [--calls 1000000] [--days 60] [--batch-size 10000] [--runs 1]
                            [--app RATE] [--before DIR] [--no-raw] [--no-check]

Loads N demo calls (``dashboard.demo.load``: the writer's COPY path, rollups upserted with
them, the reference price catalogue) into a fresh database and runs ``VACUUM ANALYZE`` once.
Every measurement then runs on its own copy of that database (``CREATE DATABASE ... TEMPLATE``),
so each starts from the same tables, pages and indexes. On a copy, every price version the
calls are priced with gets a successor (each rate x 1.1), so every call changes, and one of
these is timed:

- ``ours``: ``apply_reprice`` over every call (the CLI's apply step; its preview reads every
  call once more before it);
- ``ours + app`` (with ``--app RATE``): the same while the app works beside it, in a process of
  its own: a writer storing RATE calls/s of the demo's models, users and days, and the
  Overview's two main reads every 0.25 s; their latencies before and during the reprice;
- ``raw UPDATE``: ``UPDATE calls SET cost_usd = cost_usd`` of the same batches of ids, one
  transaction each: the server's floor for rewriting the same rows, nothing sent to a client;
- ``before`` (with ``--before DIR``, a checkout such as ``git worktree add /work/wt-before
  main``): that checkout's ``apply_reprice``, in a child process run from DIR.

They alternate within each of ``--runs`` rounds (the order reversed every other round). Each
line also gives the client's CPU time (with ``--app``, the app's process's too), the
database's backends' CPU time (from /proc, when the server runs on this machine) and the
longest transaction seen in the database (sampled every 50 ms from ``pg_stat_activity``, by
a process of its own). After each ``ours`` the rollup tables are compared with the sums over
``calls`` (in SQL, every key and column), every call is priced afresh with ``plan_reprice``
(none may be left to change), the audit row is counted, and a second ``apply_reprice`` is
timed (it must change nothing).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import resource
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Date, Engine, and_, case, cast, create_engine, func, or_, select, text
from sqlalchemy.engine import make_url

from bench.common import ADMIN_URL, drop_database, fresh_pg, run_in_checkout
from tracking.db import make_engine, normalize_url
from tracking.price_store import RateRow, add_version
from tracking.pricing import load_price_book
from tracking.reprice import apply_reprice, plan_reprice
from tracking.schema import ROLLUP_TABLES, TOKEN_FIELDS, audit_log, calls, rollup_keys


def load_base(url: str, n: int, days: int) -> None:
    from dashboard import demo

    engine = make_engine(url)
    started = time.perf_counter()
    demo.load(engine, n, days, seed=7)
    print(f"loaded {n:,} demo calls ({days} days) in {time.perf_counter() - started:.1f} s")
    engine.dispose()
    vacuum = create_engine(normalize_url(url), isolation_level="AUTOCOMMIT")
    with vacuum.connect() as conn:
        conn.execute(text("VACUUM ANALYZE"))
    vacuum.dispose()


@contextmanager
def copy_of(template_url: str) -> Iterator[str]:
    """A new database made from ``template_url``'s (no one may be connected to it), dropped
    afterwards."""
    template = make_url(template_url).database
    name = f"unitwise_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(normalize_url(ADMIN_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    url = make_url(template_url).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        drop_database(admin, name)


def change_prices(engine: Engine) -> int:
    """A successor to every price version the calls are priced with, each rate x 1.1: the one
    in force on the first call's day from that day on, a later one from a microsecond after its
    own start. Every call then changes (its cost, or at least its version), but one dated
    exactly at such a start. Returns the number of calls."""
    with engine.connect() as conn:
        book = load_price_book(conn)
        first, last, count = conn.execute(
            select(func.min(calls.c.occurred_at), func.max(calls.c.occurred_at), func.count())
        ).one()
        models = conn.execute(select(calls.c.provider, calls.c.model).distinct()).all()
    start = datetime.combine(first.date(), datetime.min.time(), UTC)
    with engine.begin() as conn:
        done = set()
        for provider, model in models:
            in_force = book.version_at(provider, model, start)
            for version in book.history(provider, model):
                if version.id in done or version.effective_from > last:
                    continue
                if version.effective_from <= start and version is not in_force:
                    continue  # replaced before the first call
                done.add(version.id)
                at = max(start, version.effective_from + timedelta(microseconds=1))
                rates = [
                    RateRow(unit, rate.rate * Decimal("1.1"), rate.per, rate.tier_above, variant)
                    for (unit, variant), tiers in version.rates.items()
                    for rate in tiers
                ]
                add_version(conn, version.provider, version.model, at, rates, source="bench")
    return int(count)


def rollup_mismatches(engine: Engine) -> dict[str, int]:
    """For each rollup table, how many of its keys differ from the sums over ``calls`` (in any
    column), or exist on one side only."""
    found = {}
    of_call = {
        "day": cast(func.timezone("UTC", calls.c.occurred_at), Date),
        "user_id": func.coalesce(calls.c.user_id, ""),
        "feature": func.coalesce(calls.c.feature, ""),
        "provider": calls.c.provider,
        "model": calls.c.model,
    }
    sums = {
        "calls": func.count(),
        "error_calls": func.count(case((calls.c.status != "ok", 1))),
        "unpriced_calls": func.count(case((calls.c.cost_usd.is_(None), 1))),
        **{name: func.coalesce(func.sum(calls.c[name]), 0) for name in TOKEN_FIELDS},
        "duration_ms_sum": func.coalesce(func.sum(calls.c.duration_ms), 0),
        "cost_usd": func.coalesce(func.sum(calls.c.cost_usd), 0),
    }
    with engine.connect() as conn:
        for table in ROLLUP_TABLES:
            keys = rollup_keys(table)
            want = (
                select(*(of_call[k].label(k) for k in keys), *(v.label(n) for n, v in sums.items()))
                .group_by(*(of_call[k] for k in keys))
                .subquery()
            )
            on = and_(*(want.c[k] == table.c[k] for k in keys))
            differ = or_(
                *(want.c[k].is_(None) for k in keys),
                *(table.c[k].is_(None) for k in keys),
                *(want.c[n].is_distinct_from(table.c[n]) for n in sums),
            )
            query = select(func.count()).select_from(want.join(table, on, full=True)).where(differ)
            found[table.name] = int(conn.execute(query).scalar_one())
    return found


def count_audits(url: str) -> int:
    engine = make_engine(url)
    with engine.connect() as conn:
        found = int(conn.execute(select(func.count()).select_from(audit_log)).scalar_one())
    engine.dispose()
    return found


def verify(url: str, audits_before: int) -> None:
    """Rollups equal the sums over calls; every call is priced as the book prices it now; the
    reprice wrote its audit row. Raises if not."""
    engine = make_engine(url)
    try:
        bad = rollup_mismatches(engine)
        assert not any(bad.values()), f"rollups differ from the calls: {bad}"
        with engine.connect() as conn:
            preview = plan_reprice(conn)
            stored = conn.execute(select(func.count()).select_from(calls)).scalar_one()
        assert preview.selected == stored, (preview.selected, stored)
        assert preview.changed == 0, f"{preview.changed} calls not priced as the book says"
        assert count_audits(url) == audits_before + 1
    finally:
        engine.dispose()


def _cpu_of(pid: int, tick: int) -> float | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / tick


def _watch(url: str, ready: Any, stop: Any, out: Any) -> None:
    """``Watch``'s child process: every 50 ms, the database's backends' CPU time (from /proc,
    kept at the last reading; a backend counts from when it is first seen) and the longest
    transaction open in the database; at ``stop``, both and this process's own CPU to ``out``."""
    engine = create_engine(normalize_url(url), isolation_level="AUTOCOMMIT")
    tick = os.sysconf("SC_CLK_TCK")
    query = text(
        "SELECT pid, EXTRACT(EPOCH FROM now() - xact_start) FROM pg_stat_activity"
        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    first: dict[int, float] = {}
    last: dict[int, float] = {}
    longest = 0.0
    with engine.connect() as conn:
        while True:
            for pid, age in conn.execute(query):
                longest = max(longest, float(age or 0))
                used = _cpu_of(pid, tick)
                if used is not None:
                    first.setdefault(pid, used)
                    last[pid] = used
            ready.set()
            if stop.wait(0.05):
                break
    engine.dispose()
    server = sum(used - first[pid] for pid, used in last.items())
    out.put((server, longest, time.process_time()))


class Watch:
    """A run's server CPU time and longest transaction, sampled by a process of its own: a
    thread of the bench's would take the GIL from the reprice's threads 20 times a second
    (measured: 44k against 52k calls/s, 3 s more client CPU)."""

    def __init__(self, url: str) -> None:
        context = multiprocessing.get_context("spawn")
        self.ready, self.stop, self.out = context.Event(), context.Event(), context.Queue()
        self.process = context.Process(target=_watch, args=(url, self.ready, self.stop, self.out))
        self.process.start()
        assert self.ready.wait(60), "the watching process did not start"
        self.server_cpu = self.longest = self.own_cpu = 0.0

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        self.server_cpu, self.longest, self.own_cpu = self.out.get(timeout=60)
        self.process.join()


class App:
    """The app at work beside a reprice: a writer storing calls of the demo's models, users and
    days (priced with the new prices, ``rate`` a second, flushed every 0.25 s), and the
    Overview's two main reads (``day_frame`` of the last 30 days and ``top_users``) every
    0.25 s. Records how long each flush and each read took, before and while the reprice
    runs (``started``)."""

    def __init__(self, url: str, rate: int, journal: str) -> None:
        from tracking.config import build_settings
        from tracking.writer import Writer

        self.engine = make_engine(url)
        with self.engine.connect() as conn:
            self.book = load_price_book(conn)
            first, last = conn.execute(
                select(func.min(calls.c.occurred_at), func.max(calls.c.occurred_at))
            ).one()
        self.span = (first, (last - first).total_seconds())
        settings = build_settings(url, journal_path=journal, queue_size=1_000_000)
        self.writer = Writer(settings)
        self.writer.refresh_prices()
        self.rate = rate
        self.stop = threading.Event()
        self.started: float | None = None
        self.flushes: dict[str, list[float]] = {"before": [], "during": []}
        self.reads: dict[str, list[float]] = {"before": [], "during": []}
        self.stored = 0
        self.threads = [threading.Thread(target=self._write), threading.Thread(target=self._read)]

    def _phase(self) -> str:
        return "before" if self.started is None else "during"

    def _events(self, n: int, rng: random.Random) -> list[Any]:
        from dashboard.demo import FEATURES
        from tracking.events import CallEvent, uuid7
        from tracking.pricing import price_event

        found = []
        for _ in range(n):
            feature = rng.choice(FEATURES)
            event = CallEvent(
                id=uuid7(),
                occurred_at=self.span[0] + timedelta(seconds=rng.random() * self.span[1]),
                provider=feature.provider,
                model=feature.model,
                user_id=f"user_{rng.randrange(100):04d}",
                feature=feature.name,
                input_tokens=rng.randint(50, 4000),
                output_tokens=rng.randint(10, 800),
                duration_ms=rng.randint(100, 4000),
            )
            price_event(self.book, event)
            found.append(event)
        return found

    def _write(self) -> None:
        rng = random.Random(7)
        while not self.stop.wait(0.25):
            for event in self._events(self.rate // 4, rng):
                self.writer.put(event)
            phase, started = self._phase(), time.perf_counter()
            assert self.writer.flush(120)
            self.flushes[phase].append(time.perf_counter() - started)
            self.stored += self.rate // 4

    def _read(self) -> None:
        from dashboard import queries
        from dashboard.queries import Filters

        today = datetime.now(UTC).date()
        f = Filters(today - timedelta(days=29), today)
        while not self.stop.wait(0.25):
            phase, started = self._phase(), time.perf_counter()
            queries.day_frame(self.engine, f)
            queries.top_users(self.engine, f)
            self.reads[phase].append(time.perf_counter() - started)

    def __enter__(self) -> App:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()
        assert self.writer.shutdown(60)
        stats = self.writer.stats()
        assert stats["written"] == self.stored and not stats["dropped"], stats
        self.engine.dispose()

    def report(self) -> str:
        def ms(values: list[float]) -> str:
            if not values:
                return "-"
            middle, most = statistics.median(values) * 1000, max(values) * 1000
            return f"median {middle:,.0f}, max {most:,.0f} ms"

        return (
            f"app beside it: {self.stored:,} calls stored by the writer; its flushes before"
            f" {ms(self.flushes['before'])}, during {ms(self.flushes['during'])}; the Overview's"
            f" reads before {ms(self.reads['before'])}, during {ms(self.reads['during'])}"
        )


def run_ours(url: str, batch_size: int) -> dict[str, Any]:
    engine = make_engine(url)
    started = time.perf_counter()
    result = apply_reprice(engine, batch_size=batch_size, who="bench")
    elapsed = time.perf_counter() - started
    engine.dispose()
    return {"seconds": elapsed, "changed": result.preview.changed, "batches": result.batches}


def _run_app(
    url: str, rate: int, journal: str, ready: Any, begin: Any, stop: Any, out: Any
) -> None:
    """``App`` in a process of its own, as the host app and the dashboard are: 3 s of "before"
    figures, then the reprice's (from ``begin`` to ``stop``)."""
    with App(url, rate, journal) as app:
        time.sleep(3)
        ready.set()
        begin.wait()
        app.started = time.perf_counter()
        stop.wait()
    out.put(app.report())


def run_ours_beside_the_app(url: str, batch_size: int, rate: int) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    ready, begin, stop, out = context.Event(), context.Event(), context.Event(), context.Queue()
    with tempfile.TemporaryDirectory() as tmp:
        journal = f"{tmp}/journal.jsonl"
        args = (url, rate, journal, ready, begin, stop, out)
        process = context.Process(target=_run_app, args=args)
        process.start()
        try:
            assert ready.wait(120), "the app's process did not start"
            begin.set()
            found = run_ours(url, batch_size)
        finally:
            stop.set()
        report = out.get(timeout=120)
        process.join()
    return found | {"app": report}


_BEFORE = """
import json, sys, time
import tracking
from tracking.db import make_engine
from tracking.reprice import apply_reprice
engine = make_engine(sys.argv[1])
started = time.perf_counter()
result = apply_reprice(engine, batch_size=int(sys.argv[2]), who="bench")
print(json.dumps({"seconds": time.perf_counter() - started, "changed": result.preview.changed,
                  "batches": result.batches, "tracking": tracking.__file__}))
"""


def run_before(directory: str, url: str, batch_size: int) -> dict[str, Any]:
    """``apply_reprice`` as ``directory``'s checkout has it, in a child process run there."""
    return run_in_checkout(_BEFORE, directory, url, str(batch_size), package="tracking")


def run_raw(url: str, batch_size: int) -> dict[str, Any]:
    """``UPDATE calls SET cost_usd = cost_usd`` of the same batches of ids (their bounds read
    first, untimed), one transaction each."""
    engine = make_engine(url)
    with engine.connect() as conn:
        ids = conn.execute(select(calls.c.id).order_by(calls.c.id)).scalars().all()
    bounds = ids[batch_size - 1 :: batch_size]
    if not bounds or bounds[-1] != ids[-1]:
        bounds.append(ids[-1])
    statement = text("UPDATE calls SET cost_usd = cost_usd WHERE id > :lo AND id <= :hi")
    changed = 0
    lo = uuid.UUID(int=0)
    started = time.perf_counter()
    for hi in bounds:
        with engine.begin() as conn:
            changed += conn.execute(statement, {"lo": lo, "hi": hi}).rowcount
        lo = hi
    elapsed = time.perf_counter() - started
    engine.dispose()
    assert changed == len(ids), (changed, len(ids))
    return {"seconds": elapsed, "changed": changed, "batches": len(bounds)}


def measure(
    name: str, base: str, batch_size: int, run: Callable[[str], dict[str, Any]], check: bool
) -> dict[str, Any]:
    with copy_of(base) as url:
        engine = make_engine(url)
        n = change_prices(engine)
        engine.dispose()
        audits = count_audits(url)
        mine, children = os.times(), resource.getrusage(resource.RUSAGE_CHILDREN)
        with Watch(url) as watch:
            found = run(url)
        now, later = os.times(), resource.getrusage(resource.RUSAGE_CHILDREN)
        client = now.user - mine.user + now.system - mine.system - watch.own_cpu
        client += later.ru_utime - children.ru_utime + later.ru_stime - children.ru_stime
        found |= {"calls": n, "rate": n / found["seconds"], "client_cpu": client}
        found |= {"server_cpu": watch.server_cpu, "longest": watch.longest}
        print(
            f"{name:<10} {found['rate']:>7,.0f} calls/s: {found['changed']:,} of {n:,} changed"
            f" in {found['seconds']:.1f} s, {found['batches']} batches; CPU client"
            f" {client:.1f} s, server {watch.server_cpu:.1f} s; longest transaction"
            f" {watch.longest * 1000:,.0f} ms",
            flush=True,
        )
        if "app" in found:
            print(f"{'':<10} {found.pop('app')}", flush=True)
        if check:
            verify(url, audits)
            second = run_ours(url, batch_size)
            assert second["changed"] == 0, second
            print(
                f"{'':<10} checked: rollups = sums over calls, every call as priced afresh,"
                f" audit row; a second run changed nothing ({n / second['seconds']:,.0f} calls/s)",
                flush=True,
            )
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=1, help="rounds of the measurements")
    parser.add_argument("--before", help="a checkout whose apply_reprice to time alternately")
    parser.add_argument("--no-raw", action="store_true", help="leave out the raw UPDATE")
    parser.add_argument(
        "--app",
        type=int,
        default=0,
        metavar="RATE",
        help="also time ours beside the app: a writer storing RATE calls/s, the Overview's reads",
    )
    parser.add_argument("--no-check", action="store_true", help="skip the checks (faster)")
    args = parser.parse_args()
    contenders: list[tuple[str, Callable[[str], dict[str, Any]], bool]] = [
        ("ours", lambda url: run_ours(url, args.batch_size), not args.no_check)
    ]
    if args.app:
        contenders.append(
            (
                "ours + app",
                lambda url: run_ours_beside_the_app(url, args.batch_size, args.app),
                not args.no_check,
            )
        )
    if not args.no_raw:
        contenders.append(("raw UPDATE", lambda url: run_raw(url, args.batch_size), False))
    if args.before:
        before = os.path.abspath(args.before)
        contenders.append(("before", lambda url: run_before(before, url, args.batch_size), False))
    results: dict[str, list[float]] = {}
    with fresh_pg(catalogue=True) as base:
        load_base(base, args.calls, args.days)
        for round_ in range(args.runs):
            for name, run, check in contenders if round_ % 2 == 0 else contenders[::-1]:
                found = measure(name, base, args.batch_size, run, check)
                results.setdefault(name, []).append(found["rate"])
    print(f"calls: {args.calls:,}, batch size {args.batch_size:,}, {args.runs} round(s)")
    for name, rates in results.items():
        print(f"{name:<10} calls/s: {', '.join(f'{r:,.0f}' for r in rates)}")
    for name in ("raw UPDATE", "before"):
        if name in results:
            ratio = statistics.median(results["ours"]) / statistics.median(results[name])
            print(f"ours / {name}: {ratio:.2f}x (medians)")


if __name__ == "__main__":
    main()
