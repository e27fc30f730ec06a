"""Readers while the writer ingests: app sessions running the pages' SQL against a store the
writer fills at full speed (issue 20).

    python -m bench.readers --url URL [--readers 3] [--seconds 20] [--rounds 3] [--think 0]

Three kinds of round, alternated (``writer``, ``both``, ``readers``, then again), each
``--seconds`` long:
- ``writer``: the real tracking writer (``tracking.writer.Writer``, two connections) ingesting
  calls built and priced up front, its queue kept a few batches ahead, as ``bench.ingest`` does;
- ``both``: the same, while the readers loop over the pages' SQL;
- ``readers``: the readers alone (the page SQL's reference).
The figures: the writer's calls/s alone and beside the readers (the drop), and each page's SQL
median and p95 alone and while ingesting; on PostgreSQL also what the backends waited on
(``pg_stat_activity`` sampled every 20 ms: on the CPU, a lock, a buffer, I/O, the client).

The readers are threads of one child process, sharing one engine made as ``st.connection("sql")``
makes it (``sqlalchemy.create_engine`` of the URL): that is how Streamlit serves several
sessions (a thread each in one server process), and the writer lives in another process (the
host service's), so the two share no GIL, as in production. ``--think S`` pauses each session S
seconds between pages, like a user reading one; 0 (the default) is the worst case: every
session re-running its page as soon as it is drawn, with no cache.

The store is written to: each ingest round adds its calls (dated within the last hour, so they
land in today's rollup rows, which the pages read). Use a copy of a loaded store (``createdb -T``).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from sqlalchemy import Engine, create_engine, func, select, text

from bench.app_pages import (
    costs_by_feature_sql,
    costs_sql,
    default_filters,
    margins_sql,
    overview_sql,
)
from bench.common import make_events, price_events
from tracking.config import build_settings
from tracking.db import make_engine, normalize_url
from tracking.events import CallEvent, uuid7
from tracking.schema import daily_feature_model_rollups
from tracking.writer import Writer

READER_APP = "unitwise_bench_readers"  # the readers' application_name on PostgreSQL

PAGES: dict[str, Callable[[Engine, Any], None]] = {
    "Overview": overview_sql,
    "Costs (by feature, the default)": costs_by_feature_sql,
    "Costs (by user)": costs_sql,
    "Users & margins": margins_sql,
}


# -- the readers: one child process, a thread per session --------------------------------------
def reader_engine(url: str) -> Engine:
    """The engine the app would have: ``st.connection("sql")`` calls ``create_engine(url)``
    (its default pool: 5 connections and 10 more on demand, enough for the sessions here)."""
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "postgresql":
        return create_engine(parsed, connect_args={"application_name": READER_APP})
    return create_engine(parsed)


def serve_readers(url: str, sessions: int, think: float, pipe: Connection) -> None:
    """The child: on "run", start the sessions; on "stop", end them and send their samples
    ({page: [ms, ...]}, and the errors as text); on "exit", leave."""
    engine = reader_engine(url)
    f = default_filters()
    for fn in PAGES.values():  # warm the pool and the store's buffers
        fn(engine, f)
    pipe.send("ready")
    while (command := pipe.recv()) != "exit":
        assert command == "run", command
        stop = threading.Event()
        samples: dict[str, list[float]] = {page: [] for page in PAGES}
        errors: list[str] = []

        threads = [
            # daemons: should this child fail, its sessions must not go on reading for ever
            threading.Thread(
                target=session, args=(engine, f, n, think, stop, samples, errors), daemon=True
            )
            for n in range(sessions)
        ]
        for t in threads:
            t.start()
        pipe.send("started")
        assert pipe.recv() == "stop"
        stop.set()
        for t in threads:
            t.join()
        pipe.send((samples, errors))
    engine.dispose()


def session(
    engine: Engine,
    f: Any,
    first: int,
    think: float,
    stop: threading.Event,
    samples: dict[str, list[float]],
    errors: list[str],
) -> None:
    """One app session: the pages in turn (from the ``first``), each timed, until ``stop``."""
    order = list(PAGES.items())
    i = first
    while not stop.is_set():
        page, fn = order[i % len(order)]
        i += 1
        started = time.perf_counter()
        try:
            fn(engine, f)
        except Exception as exc:  # counted and reported: a reader must never fail
            errors.append(f"{page}: {type(exc).__name__}: {exc}"[:300])
            continue
        samples[page].append((time.perf_counter() - started) * 1000)
        if think:
            stop.wait(think)


class Readers:
    """The readers' process, driven from the bench."""

    def __init__(self, url: str, sessions: int, think: float) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.pipe, child = ctx.Pipe()
        self.process = ctx.Process(target=serve_readers, args=(url, sessions, think, child))
        self.process.start()
        assert self.pipe.recv() == "ready"

    def start(self) -> None:
        self.pipe.send("run")
        assert self.pipe.recv() == "started"

    def stop(self) -> tuple[dict[str, list[float]], list[str]]:
        self.pipe.send("stop")
        samples, errors = self.pipe.recv()
        return samples, errors

    def close(self) -> None:
        self.pipe.send("exit")
        self.process.join(60)


# -- the writer ----------------------------------------------------------------------------------
def ingest(url: str, pool: list[CallEvent], seconds: float, journal: str) -> tuple[int, float]:
    """The writer at full speed for ``seconds``: its queue kept three batches ahead from the
    pool (each event given a new id as it is queued again), then flushed; returns the calls
    written and the time from the first put to the end of the flush."""
    settings = build_settings(url, journal_path=journal, queue_size=len(pool))
    writer = Writer(settings)
    writer.refresh_prices()
    ahead = 3 * settings.batch_size
    assert len(pool) > 2 * ahead, "--pool too small"
    fed = i = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        queued = settings.queue_size - writer.room()
        if queued >= ahead:
            time.sleep(0.002)
            continue
        chunk = ahead - queued
        if fed + chunk - len(pool) > writer.counters.snapshot()["written"]:
            time.sleep(0.002)  # the pool's events about to be queued again are not stored yet
            continue
        for _ in range(chunk):
            event = pool[i]
            event.id = uuid7()
            writer.put(event)
            i = (i + 1) % len(pool)
        fed += chunk
    assert writer.flush(600), writer.stats()
    elapsed = time.perf_counter() - started
    stats = writer.stats()
    writer.shutdown()
    assert stats["written"] == fed and not stats["dropped"] and not stats["write_failures"], stats
    return fed, elapsed


# -- what the CPU did, and what PostgreSQL's backends waited on --------------------------------
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int | str = "self") -> float:
    """A process's user + system CPU time so far (from /proc: PostgreSQL runs on this host)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:  # the backend ended
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def machine_busy() -> tuple[float, float]:
    """All cores' busy and total seconds so far (/proc/stat)."""
    with open("/proc/stat") as stat:
        ticks = [int(v) for v in stat.readline().split()[1:]]
    idle = ticks[3] + ticks[4]  # idle, iowait
    return (sum(ticks) - idle) / TICK, sum(ticks) / TICK


class Sampler:
    """Every 20 ms, ``pg_stat_activity`` of the store's database: per side (the readers, by
    their application_name; the writer, every other backend) what each active backend was
    doing (on the CPU when it waits on nothing, else a lock, a buffer's LWLock, I/O, its
    client), and each backend's CPU time, so that a round's CPU is summed per side. Also the
    CPU of this process (the writer's Python), of the readers' process and of the machine."""

    def __init__(self, url: str, readers_pid: int) -> None:
        self.postgres = normalize_url(url).get_backend_name() == "postgresql"
        self.engine = make_engine(url) if self.postgres else None
        self.readers_pid = readers_pid
        self.waits: Counter[tuple[str, str]] = Counter()
        self._backends: dict[int, tuple[str, float, float]] = {}  # pid: side, first, last
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self._start = (cpu_seconds(), cpu_seconds(self.readers_pid), *machine_busy())
        self._started = time.perf_counter()
        if self.postgres:
            self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self.postgres:
            self._thread.join()
            assert self.engine is not None
            self.engine.dispose()
        self.wall = time.perf_counter() - self._started
        end = (cpu_seconds(), cpu_seconds(self.readers_pid), *machine_busy())
        own, readers, busy, total = (b - a for a, b in zip(self._start, end, strict=True))
        backends = {"writer": 0.0, "readers": 0.0}
        for side, first, last in self._backends.values():
            backends[side] += last - first
        self.cpu = {
            "writer process": own,
            "writer backends": backends["writer"],
            "readers process": readers,
            "readers backends": backends["readers"],
            "machine busy (of all cores)": busy,
            "machine cores": total,
        }

    def _run(self) -> None:
        assert self.engine is not None
        query = text(
            "SELECT pid, application_name = :readers, state = 'active',"
            " coalesce(wait_event_type || ':' || wait_event, 'CPU')"
            " FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
        )
        with self.engine.connect() as conn:
            while not self._stop.wait(0.02):
                for pid, reader, active, what in conn.execute(query, {"readers": READER_APP}):
                    side = "readers" if reader else "writer"
                    now = cpu_seconds(pid)
                    first = self._backends.get(pid, (side, now, now))[1]
                    self._backends[pid] = (side, first, max(now, first))
                    if active:
                        self.waits[side, what] += 1
                conn.rollback()


# -- the run -------------------------------------------------------------------------------------
def stored_calls(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.sum(daily_feature_model_rollups.c.calls))).scalar())


def wal_mb(url: str) -> float:
    """The size of a SQLite store's write-ahead log: readers that never pause can keep the
    writer's checkpoints from wrapping it round, and it grows."""
    path = f"{normalize_url(url).database}-wal"
    return os.path.getsize(path) / 1e6 if os.path.exists(path) else 0.0


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True, help="a loaded store (it is written to)")
    parser.add_argument("--readers", type=int, default=3, help="app sessions (threads)")
    parser.add_argument("--seconds", type=float, default=20, help="length of each round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each kind")
    parser.add_argument("--think", type=float, default=0, help="seconds between a session's pages")
    parser.add_argument("--pool", type=int, default=200_000, help="events built up front")
    args = parser.parse_args()
    url = normalize_url(args.url).render_as_string(hide_password=False)
    pool = make_events(args.pool)
    price_events(url, pool)
    store = make_engine(url)
    before = stored_calls(store)
    print(
        f"store: {before:,} calls; {args.readers} reader sessions (think {args.think} s);"
        f" rounds of {args.seconds} s: writer, both, readers, x{args.rounds}"
    )
    readers = Readers(url, args.readers, args.think)
    rates: dict[str, list[float]] = {"writer": [], "both": []}
    pages: dict[str, dict[str, list[float]]] = {"readers": {}, "both": {}}
    per_round: dict[str, dict[str, list[float]]] = {"readers": {}, "both": {}}
    cpu: dict[str, list[dict[str, float]]] = {"writer": [], "both": [], "readers": []}
    waits: dict[str, Counter[tuple[str, str]]] = {}
    errors: list[str] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for n in range(args.rounds):
                for kind in ("writer", "both", "readers"):
                    if kind != "writer":
                        readers.start()
                    with Sampler(url, readers.process.pid or 0) as sampler:
                        if kind == "readers":
                            time.sleep(args.seconds)
                        else:
                            calls, elapsed = ingest(url, pool, args.seconds, f"{tmp}/j{n}{kind}")
                            rates[kind].append(calls / elapsed)
                    if kind != "writer":
                        samples, failed = readers.stop()
                        errors += failed
                        for page, ms in samples.items():
                            pages[kind].setdefault(page, []).extend(ms)
                            if ms:
                                per_round[kind].setdefault(page, []).append(statistics.median(ms))
                    cores = {k: v / sampler.wall for k, v in sampler.cpu.items()}
                    if kind != "readers":
                        writer_cpu = sampler.cpu["writer process"] + sampler.cpu["writer backends"]
                        cores["writer CPU per call, us"] = writer_cpu / calls * 1e6
                    cpu[kind].append(cores)
                    waits.setdefault(kind, Counter()).update(sampler.waits)
                    shown = f"{rates[kind][-1]:,.0f} calls/s" if kind != "readers" else ""
                    load = os.getloadavg()[0]
                    wal = f", WAL {wal_mb(url):.0f} MB" if not sampler.postgres else ""
                    print(f"round {n + 1} {kind:<8} {shown:>16} load {load:.1f}{wal}", flush=True)
    finally:
        readers.close()
    after = stored_calls(store)
    store.dispose()
    report(before, after, rates, errors, pages, per_round, cpu, waits)


def report(
    before: int,
    after: int,
    rates: dict[str, list[float]],
    errors: list[str],
    pages: dict[str, dict[str, list[float]]],
    per_round: dict[str, dict[str, list[float]]],
    cpu: dict[str, list[dict[str, float]]],
    waits: dict[str, Counter[tuple[str, str]]],
) -> None:
    """The figures of the run."""
    alone, beside = statistics.median(rates["writer"]), statistics.median(rates["both"])
    print(f"store: {before:,} calls before, {after:,} after")
    print(f"writer alone       : {', '.join(f'{r:,.0f}' for r in rates['writer'])} calls/s")
    print(f"writer with readers: {', '.join(f'{r:,.0f}' for r in rates['both'])} calls/s")
    print(f"drop (medians)     : {1 - beside / alone:.1%} ({alone:,.0f} -> {beside:,.0f})")
    print(f"reader errors      : {len(errors)}" + (f", e.g. {errors[0]}" if errors else ""))
    head = f"{'alone med':>9} {'p95':>7} {'n':>5}  {'ingesting med':>13} {'p95':>7} {'n':>5}"
    print(f"{'page SQL, ms':<34} {head}")
    for page in PAGES:
        a, b = pages["readers"].get(page, []), pages["both"].get(page, [])
        print(
            f"{page:<34} {pct(a, 0.5):9.1f} {pct(a, 0.95):7.1f} {len(a):5}"
            f"  {pct(b, 0.5):13.1f} {pct(b, 0.95):7.1f} {len(b):5}"
        )
        rounds_a = ", ".join(f"{m:.0f}" for m in per_round["readers"].get(page, []))
        rounds_b = ", ".join(f"{m:.0f}" for m in per_round["both"].get(page, []))
        print(f"{'  round medians':<34} alone {rounds_a}; ingesting {rounds_b}")
    print("CPU, cores used (median of the rounds; 'per call' in us):")
    for name in cpu["both"][0] if cpu["both"] else ():
        shown = []
        for kind in ("writer", "both", "readers"):
            values = [c[name] for c in cpu[kind] if name in c]
            shown.append(f"{kind} {statistics.median(values):.2f}" if values else f"{kind} -")
        print(f"  {name:<28} " + ", ".join(shown))
    for kind, counts in waits.items():
        for side in ("writer", "readers"):
            of_side = {what: n for (s, what), n in counts.items() if s == side}
            total = sum(of_side.values())
            if total:
                top = sorted(of_side.items(), key=lambda kv: -kv[1])[:6]
                shown_waits = ", ".join(f"{what} {n / total:.0%}" for what, n in top)
                print(f"waits ({kind}, {side} backends, {total} samples): {shown_waits}")


if __name__ == "__main__":
    main()
