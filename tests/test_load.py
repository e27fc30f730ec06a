"""Load: threads, asyncio tasks, pre-forked workers and multiprocessing children logging at once,
every call stored exactly once (issue 20).

The callers live in tests/load_workers.py. Each call has an id the test can name (the kind of
caller, its number and the call's number), so the store is checked id by id: every call there
once, none missing, none doubled, none unknown. No caller flushes: the processes leave as
their kind does in production (gunicorn's workers by ``sys.exit(0)``, multiprocessing's by
returning), and their calls must be in the store all the same.

``UNITWISE_LOAD_SECONDS`` (default 60) sets how long the callers of the slow test record.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import threading
import time
import types
import uuid
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import pytest
from sqlalchemy import func, select

import tracking
from tests import load_workers
from tests.conftest import add_test_prices, new_pg_database
from tests.load_workers import Seen, call_id
from tracking.db import make_engine
from tracking.migrate import upgrade
from tracking.schema import ROLLUP_TABLES, call_ids, calls

ROOT = Path(__file__).resolve().parent.parent
LOAD_SECONDS = float(os.environ.get("UNITWISE_LOAD_SECONDS", "60"))


@pytest.fixture(autouse=True)
def plain_main(monkeypatch: pytest.MonkeyPatch) -> None:
    """A spawned or forkserver child re-runs the parent's ``__main__`` by its path; in the
    suite an earlier AppTest leaves that pointing at dashboard/app.py, which a child then ran
    as a script and died (exit code 1). Here, as under gunicorn, ``__main__`` is no script."""
    monkeypatch.setitem(sys.modules, "__main__", types.ModuleType("__main__"))


def expected_ids(seen: Iterable[Seen]) -> set[uuid.UUID]:
    return {call_id(s.kind, s.worker, i) for s in seen for i in range(s.recorded)}


def stored(url: str) -> tuple[int, int, list[uuid.UUID], int, list[int]]:
    """The calls' count, distinct ids and ids, the ``call_ids`` guard's rows, and the calls
    each rollup table counts."""
    engine = make_engine(url)
    with engine.connect() as conn:
        count, distinct = conn.execute(
            select(func.count(), func.count(func.distinct(calls.c.id)))
        ).one()
        ids = list(conn.execute(select(calls.c.id)).scalars())
        guards = conn.execute(select(func.count()).select_from(call_ids)).scalar_one()
        rolled = [
            int(conn.execute(select(func.coalesce(func.sum(t.c.calls), 0))).scalar_one())
            for t in ROLLUP_TABLES
        ]
    engine.dispose()
    return count, distinct, ids, guards, rolled


def assert_every_call_once(url: str, seen: list[Seen]) -> int:
    """Every call each caller recorded is in the store once, and nothing else is."""
    want = expected_ids(seen)
    count, distinct, ids, guards, rolled = stored(url)
    doubled = [i for i, n in Counter(ids).items() if n > 1]
    have = set(ids)
    assert not doubled, f"{len(doubled)} ids stored twice, e.g. {doubled[:3]}"
    assert not (want - have), f"{len(want - have)} calls lost, e.g. {sorted(want - have)[:3]}"
    assert not (have - want), f"{len(have - want)} unknown calls stored"
    assert count == distinct == guards == len(want)
    assert rolled == [len(want)] * len(ROLLUP_TABLES)  # each call rolled up once, everywhere
    return count


def assert_nothing_went_wrong(seen: list[Seen]) -> None:
    for s in seen:
        problems = (s.exceptions, s.not_logged, s.dropped, s.rejected, s.internal_errors)
        assert problems == (0, 0, 0, 0, 0), s


def start_mp(kind: str, method: str, setup, out_dir: Path, workers: int, seconds, rate):
    ctx = multiprocessing.get_context(method)
    processes = [
        ctx.Process(
            target=load_workers.mp_worker,
            args=(kind, setup, str(out_dir), worker, seconds, rate),
            name=f"{kind}-{worker}",
        )
        for worker in range(workers)
    ]
    for p in processes:
        p.start()
    return processes


def join_all(processes, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for p in processes:
        p.join(max(0.1, deadline - time.monotonic()))
    hung = [p.name for p in processes if p.is_alive()]
    for p in processes:
        if p.is_alive():
            p.kill()
            p.join()
    assert not hung, f"children still running after {timeout} s: {hung}"
    assert [p.exitcode for p in processes] == [0] * len(processes)


@pytest.mark.parametrize("method", ["fork", "forkserver", "spawn"])
def test_a_multiprocessing_child_stores_its_calls_when_it_returns(
    store_url: str, tmp_path: Path, method: str
) -> None:
    """A forked child leaves by ``os._exit``, past ``atexit``: its queued calls were lost."""
    journal = str(tmp_path / "journal.jsonl")
    tracking.configure(url=store_url, journal_path=journal)  # the default 0.5 s flush interval
    try:
        tracking.record(provider="openai", model="gpt-4o", input_tokens=1, call_id=uuid.uuid4())
        assert tracking.flush(30)  # the parent's writer runs when the children are forked
        out = tmp_path / "seen"
        out.mkdir()
        kind = {"fork": "mp-fork", "forkserver": "mp-forkserver", "spawn": "mp-spawn"}[method]
        setup = None if method == "fork" else (store_url, journal)
        join_all(start_mp(kind, method, setup, out, 2, 0.3, 1000), 120)
        seen = load_workers.read_seen(str(out))
        assert len(seen) == 2 and all(s.recorded >= 100 for s in seen)
        assert_nothing_went_wrong(seen)
        want = expected_ids(seen)
        engine = make_engine(store_url)
        with engine.connect() as conn:
            have = set(conn.execute(select(calls.c.id).where(calls.c.feature == kind)).scalars())
        engine.dispose()
        lost = want - have
        assert not lost, f"{len(lost)} of {len(want)} calls lost"
        assert have == want
    finally:
        tracking.shutdown()


THREADS, TASKS, PREFORK, MP_FORK, MP_SPAWN = 4, 8, 3, 2, 2
RATE = 300.0  # calls/s of each thread and process; each asyncio task a third of it


@pytest.mark.slow
@pytest.mark.postgres
def test_threads_tasks_and_processes_at_once_store_every_call_once(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    seconds = LOAD_SECONDS
    out = tmp_path / "seen"
    out.mkdir()
    journal = str(tmp_path / "journal.jsonl")
    with new_pg_database("unitwise_load") as url:
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        add_test_prices(url)
        tracking.configure(url=url, journal_path=journal)
        args = ["prefork", url, journal, str(out), str(PREFORK), str(seconds), str(RATE)]
        master = subprocess.Popen(  # the gunicorn-like master and its forked workers
            [sys.executable, "-m", "tests.load_workers", *args],
            cwd=ROOT,
            env=dict(os.environ, PYTHONPATH=str(ROOT)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started = time.monotonic()
        here: list[Seen] = []
        callers = [
            threading.Thread(
                target=lambda w=w: here.append(load_workers.paced(Seen("thread", w), seconds, RATE))
            )
            for w in range(THREADS)
        ]
        callers.append(
            threading.Thread(
                target=lambda: here.extend(load_workers.run_tasks(TASKS, seconds, RATE / 3))
            )
        )
        for t in callers:
            t.start()
        children = start_mp("mp-fork", "fork", None, out, MP_FORK, seconds, RATE)
        children += start_mp("mp-spawn", "spawn", (url, journal), out, MP_SPAWN, seconds, RATE)
        for t in callers:
            t.join(seconds + 120)
        assert not any(t.is_alive() for t in callers)
        join_all(children, seconds + 120)
        _, master_err = master.communicate(timeout=seconds + 120)
        assert master.returncode == 0, master_err
        assert tracking.flush(60)
        stats = tracking.stats()
        tracking.shutdown()
        elapsed = time.monotonic() - started
        for s in here:
            s.dropped, s.rejected = stats["dropped"], stats["rejected"]
            s.internal_errors = stats["internal_errors"]
        seen = here + load_workers.read_seen(str(out))
        kinds = Counter(s.kind for s in seen)
        assert kinds == {
            "thread": THREADS,
            "task": TASKS,
            "prefork": PREFORK,
            "master": 1,
            "mp-fork": MP_FORK,
            "mp-spawn": MP_SPAWN,
        }
        assert_nothing_went_wrong(seen)
        total = assert_every_call_once(url, seen)
        output = capfd.readouterr()
        for text in (master_err, output.err):
            assert "Traceback" not in text and "unitwise:" not in text, text
        assert stats["journal_pending"] == 0
        assert not Path(journal).exists() or not Path(journal).stat().st_size
    per_kind = Counter()
    for s in seen:
        per_kind[s.kind] += s.recorded
    with capfd.disabled():
        print(
            f"\nload: {total:,} calls in {elapsed:.1f} s ({total / elapsed:,.0f}/s), each stored"
            f" once; by kind {dict(per_kind)}; lost 0, doubled 0, dropped 0"
        )
