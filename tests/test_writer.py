"""The writer under stress: an outage and recovery, a crash, a fork, exit, idempotent batches."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

import tracking
from tests.conftest import add_test_prices, assert_rollups_equal_the_calls
from tests.tcpproxy import TcpProxy
from tracking.db import make_engine
from tracking.events import CallEvent
from tracking.schema import ROLLUP_TABLES, calls, daily_rollups
from tracking.store import write_batch


def counts(url: str) -> tuple[int, int, int | tuple[int, ...]]:
    """(rows in calls, distinct ids, calls counted by the rollups): the last is each rollup
    table's count when all agree, else all their counts."""
    eng = make_engine(url)
    with eng.connect() as conn:
        n = conn.execute(select(func.count()).select_from(calls)).scalar_one()
        distinct = conn.execute(select(func.count(func.distinct(calls.c.id)))).scalar_one()
        rolled = [
            int(conn.execute(select(func.coalesce(func.sum(table.c.calls), 0))).scalar_one())
            for table in ROLLUP_TABLES
        ]
    eng.dispose()
    return n, distinct, rolled[0] if len(set(rolled)) == 1 else tuple(rolled)


def run_host(script: str, *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run a host program in its own interpreter; returns its outcome and seconds taken."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=60
    )
    return done, time.monotonic() - started


def wait_for(predicate, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def test_write_batch_twice_stores_each_call_once(engine) -> None:
    events = [
        CallEvent(
            id=uuid.uuid4(),
            occurred_at=datetime(2026, m, 3, tzinfo=UTC),
            provider="openai",
            model="gpt-4o",
            input_tokens=5,
        )
        for m in (1, 2, 3)
    ]
    with engine.begin() as conn:
        assert write_batch(conn, events) == 3
    with engine.begin() as conn:
        assert write_batch(conn, events + events) == 0
    assert counts(str(engine.url.render_as_string(hide_password=False))) == (3, 3, 3)


@pytest.mark.postgres
def test_store_outage_spills_then_replays_without_loss_or_duplicates(pg_url, tmp_path) -> None:
    from tracking.migrate import upgrade

    upgrade(make_engine(pg_url))
    proxy = TcpProxy(make_url(pg_url).port or 5432)
    proxy.start()
    via_proxy = make_url(pg_url).set(host="127.0.0.1", port=proxy.port)
    url = via_proxy.render_as_string(hide_password=False)
    eng = make_engine(pg_url)
    with eng.begin() as conn:
        for table in (calls, *ROLLUP_TABLES):
            conn.execute(table.delete())
    from tracking.schema import call_ids

    with eng.begin() as conn:
        conn.execute(call_ids.delete())
    eng.dispose()
    tracking.configure(url=url, journal_path=str(tmp_path / "j.jsonl"), flush_interval=0.05)
    try:
        for i in range(100):
            tracking.record(provider="openai", model="gpt-4o", input_tokens=i + 1)
        assert tracking.flush(10)
        assert counts(pg_url) == (100, 100, 100)

        proxy.stop()  # the store goes away
        for i in range(200):
            tracking.record(provider="openai", model="gpt-4o", input_tokens=i + 1)
        assert tracking.flush(10)  # safe in the journal
        stats = tracking.stats()
        assert stats["spilled"] == 200 and stats["journal_pending"] and not stats["store_ok"]
        assert counts(pg_url) == (100, 100, 100)

        proxy.start()  # and comes back
        for i in range(50):
            tracking.record(provider="openai", model="gpt-4o", input_tokens=i + 1)
        assert wait_for(lambda: counts(pg_url)[0] == 350), counts(pg_url)
        assert tracking.flush(10)
        assert counts(pg_url) == (350, 350, 350)
        assert not tracking.stats()["journal_pending"]
    finally:
        tracking.shutdown()
        proxy.stop()


CRASHING_HOST = textwrap.dedent(
    """
    import os, signal, sys
    import tracking
    tracking.configure(url=sys.argv[1], journal_path=sys.argv[2], flush_interval=0.05)
    for i in range(int(sys.argv[3])):
        tracking.record(provider="openai", model="gpt-4o", input_tokens=i + 1, user_id="crash")
    assert tracking.flush(15), tracking.stats()
    print(tracking.stats()["spilled"], flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_journal_of_a_crashed_process_is_replayed_at_next_start(store_url, tmp_path) -> None:
    add_test_prices(store_url)
    journal = tmp_path / "journal.jsonl"
    not_a_dir = tmp_path / "a-file"
    not_a_dir.write_text("a file where the SQLite store's folder should be")
    unreachable = (
        "postgresql://postgres@127.0.0.1:1/nowhere"
        if store_url.startswith("postgresql")
        else f"sqlite:///{not_a_dir}/unitwise.db"
    )
    done = subprocess.run(
        [sys.executable, "-c", CRASHING_HOST, unreachable, str(journal), "300"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "UNITWISE_STRICT": "1"},
    )
    assert done.returncode == -9, done.stderr
    assert done.stdout.strip() == "300"
    assert journal.stat().st_size > 0

    tracking.configure(url=store_url, journal_path=str(journal), flush_interval=0.05)
    try:
        assert tracking.flush(20)
        assert counts(store_url) == (300, 300, 300)
        assert tracking.stats()["replayed"] == 300
        eng = make_engine(store_url)
        with eng.connect() as conn:
            unpriced = conn.execute(
                select(func.count()).select_from(calls).where(calls.c.cost_usd.is_(None))
            ).scalar_one()
        eng.dispose()
        assert unpriced == 0  # priced at replay with the store's prices
    finally:
        tracking.shutdown()
    assert journal.stat().st_size == 0


def test_forked_child_gets_its_own_writer_and_nothing_is_lost(configured: str) -> None:
    for i in range(10):
        tracking.record(provider="openai", model="gpt-4o", input_tokens=i + 1, feature="parent")
    pid = os.fork()
    if pid == 0:  # the child
        code = 1
        try:
            for _ in range(7):
                tracking.record(provider="openai", model="gpt-4o", input_tokens=1, feature="child")
            code = 0 if tracking.flush(15) else 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    for _ in range(3):
        tracking.record(provider="openai", model="gpt-4o", input_tokens=1, feature="parent")
    assert tracking.flush(15)
    assert counts(configured) == (20, 20, 20)
    eng = make_engine(configured)
    with eng.connect() as conn:
        by_feature = dict(
            conn.execute(select(calls.c.feature, func.count()).group_by(calls.c.feature)).all()
        )
    eng.dispose()
    assert by_feature == {"parent": 13, "child": 7}


def test_a_child_forked_while_a_parent_thread_holds_a_lock_still_logs(configured: str) -> None:
    """A delivery lane or a host thread inside ``counters.add`` at the fork: the child's lock
    is a new one, or its first call would wait forever for a thread it does not have."""
    from tracking import client

    tracking.record(provider="openai", model="gpt-4o", input_tokens=1, feature="parent")
    tracker = client.get()
    assert tracker is not None
    held = [tracker.counters._lock, tracker.writer.logs._lock, tracker.writer.prices._lock]
    held.append(tracker._recent_lock)
    for lock in held:
        lock.acquire()
    try:
        pid = os.fork()
        if pid == 0:  # the child
            code = 1
            try:
                tracking.record(provider="openai", model="gpt-4o", input_tokens=1, feature="child")
                code = 0 if tracking.flush(15) and tracking.stats()["written"] >= 1 else 3
            finally:
                os._exit(code)
    finally:
        for lock in held:
            lock.release()
    deadline = time.monotonic() + 30
    while (done := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    if done[0] == 0:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        pytest.fail("the forked child hung on a lock its parent held at the fork")
    assert os.waitstatus_to_exitcode(done[1]) == 0
    assert tracking.flush(15)


EXITING_HOST = textwrap.dedent(
    """
    import sys
    import tracking
    tracking.configure(url=sys.argv[1], journal_path=sys.argv[2], flush_interval=30)
    for i in range(500):
        tracking.record(provider="openai", model="gpt-4o", input_tokens=i + 1)
    # no flush: the exit handler must deliver within its bound
    """
)


def test_calls_are_flushed_at_exit_within_a_bound(store_url, tmp_path) -> None:
    done, elapsed = run_host(EXITING_HOST, store_url, str(tmp_path / "j.jsonl"))
    assert done.returncode == 0, done.stderr
    assert elapsed < 15
    assert counts(store_url) == (500, 500, 500)


BLACK_HOLE_HOST = textwrap.dedent(
    """
    import sys
    import tracking
    tracking.configure(url=sys.argv[1], journal_path=sys.argv[2], shutdown_timeout=2)
    for i in range(400):
        tracking.record(provider="openai", model="gpt-4o", input_tokens=i + 1)
    # exit: the store never answers, so the exit handler must give up in time and journal all
    """
)


def test_exit_against_a_store_that_never_answers_is_bounded_and_journals_all(
    pg_url: str, tmp_path
) -> None:
    import socket
    import threading

    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(16)
    accepted: list[socket.socket] = []
    threading.Thread(
        target=lambda: accepted.extend(iter(lambda: hole.accept()[0], None)), daemon=True
    ).start()
    silent = f"postgresql://postgres@127.0.0.1:{hole.getsockname()[1]}/x"
    journal = tmp_path / "journal.jsonl"
    done, elapsed = run_host(BLACK_HOLE_HOST, silent, str(journal))
    hole.close()
    assert done.returncode == 0, done.stderr
    assert elapsed < 15  # bounded: shutdown_timeout plus start-up, not the connect timeout chain
    assert len(journal.read_text().splitlines()) == 400

    from tracking.migrate import upgrade

    upgrade(make_engine(pg_url))
    eng = make_engine(pg_url)
    with eng.begin() as conn:
        from tracking.schema import call_ids

        for table in (calls, call_ids, *ROLLUP_TABLES):
            conn.execute(table.delete())
    eng.dispose()
    tracking.configure(url=pg_url, journal_path=str(journal), flush_interval=0.05)
    try:
        assert tracking.flush(20)
        assert counts(pg_url) == (400, 400, 400)
    finally:
        tracking.shutdown()


def test_a_torn_journal_line_is_kept_aside_and_the_rest_replayed(store_url, tmp_path) -> None:
    from tracking.journal import Journal

    journal = Journal(tmp_path / "journal.jsonl")
    events = [
        CallEvent(
            id=uuid.uuid4(),
            occurred_at=datetime(2026, 5, 1, tzinfo=UTC),
            provider="openai",
            model="gpt-4o",
            input_tokens=3,
        )
        for _ in range(5)
    ]
    journal.append(events)
    with open(journal.path, "a") as handle:
        handle.write('{"id": "torn by a cra')  # a crash in the middle of a write
    tracking.configure(url=store_url, journal_path=str(journal.path), flush_interval=0.05)
    try:
        assert tracking.flush(20)
    finally:
        tracking.shutdown()
    assert counts(store_url) == (5, 5, 5)
    assert journal.path.with_suffix(".jsonl.bad").read_text().startswith('{"id": "torn')
    assert not journal.pending()


def test_prices_added_later_are_used_after_the_background_refresh(store_url, tmp_path) -> None:
    tracking.configure(
        url=store_url,
        journal_path=str(tmp_path / "j.jsonl"),
        flush_interval=0.05,
        price_refresh_interval=0.2,
    )
    try:
        tracking.record(provider="openai", model="gpt-4o", input_tokens=1_000_000)
        assert tracking.flush(10)
        add_test_prices(store_url)
        assert wait_for(
            lambda: (
                tracking.stats()["prices_loaded"]
                and tracking.client.get().writer.prices.value is not None
                and len(tracking.client.get().writer.prices.value) > 0
            ),
            10,
        )
        tracking.record(provider="openai", model="gpt-4o", input_tokens=1_000_000)
        assert tracking.flush(10)
    finally:
        tracking.shutdown()
    eng = make_engine(store_url)
    with eng.connect() as conn:
        costs = conn.execute(select(calls.c.cost_usd).order_by(calls.c.occurred_at)).scalars()
        assert list(costs) == [None, Decimal("2.5")]
    eng.dispose()


def empty_pg_store(pg_url: str) -> None:
    """Migrate the session's PostgreSQL database and empty what the writer fills."""
    from tracking.migrate import upgrade
    from tracking.schema import call_ids

    eng = make_engine(pg_url)
    upgrade(eng)
    with eng.begin() as conn:
        for table in (calls, call_ids, *ROLLUP_TABLES):
            conn.execute(table.delete())
    eng.dispose()


def writer_for(url: str, tmp_path, **options: object):
    from tracking.config import build_settings
    from tracking.writer import Writer

    options.setdefault("flush_interval", 0.05)
    return Writer(build_settings(url, journal_path=str(tmp_path / "j.jsonl"), **options))


def call(user: str, when: datetime | None = None) -> CallEvent:
    return CallEvent(
        id=uuid.uuid4(),
        occurred_at=when or datetime.now(UTC),
        provider="openai",
        model="gpt-4o",
        user_id=user,
        input_tokens=10,
    )


@contextmanager
def rollups_locked(pg_url: str, writer) -> Iterator[Callable[[], None]]:
    """One call of user "stuck" stored, then its rollup row held by another session (a long
    maintenance job, say); yields the function that lets it go."""
    writer.put(call("stuck"))
    assert writer.flush(10)
    eng = make_engine(pg_url)
    locker = eng.connect()
    locking = locker.begin()
    locker.execute(select(daily_rollups).with_for_update())
    try:
        yield locking.commit
    finally:
        locker.close()  # lets go, should the test fail first
        eng.dispose()


@pytest.mark.postgres
def test_a_batch_stuck_on_a_lock_holds_up_only_its_own_connection(pg_url, tmp_path) -> None:
    empty_pg_store(pg_url)
    writer = writer_for(pg_url, tmp_path, batch_size=100)
    eng = make_engine(pg_url)
    try:
        with rollups_locked(pg_url, writer) as release:
            for _ in range(100):
                writer.put(call("stuck"))  # one full batch that must wait for the lock
            for _ in range(300):
                writer.put(call("free"))

            def stored(user: str) -> int:
                with eng.connect() as conn:
                    query = select(func.count()).select_from(calls).where(calls.c.user_id == user)
                    return conn.execute(query).scalar_one()

            assert wait_for(lambda: stored("free") == 300, 10), stored("free")
            time.sleep(0.3)  # later calls, written by later rounds of the writer, get through too
            for _ in range(100):
                writer.put(call("free"))
            assert wait_for(lambda: stored("free") == 400, 10), stored("free")
            assert stored("stuck") == 1  # still waiting, in its own transaction
            release()
            assert writer.flush(10)
            assert (stored("stuck"), stored("free")) == (101, 400)
            assert writer.stats()["spilled"] == 0
    finally:
        writer.shutdown()
        eng.dispose()
    assert counts(pg_url) == (501, 501, 501)


@pytest.mark.postgres
def test_a_new_month_behind_a_stuck_batch_never_locks_readers_out(pg_url, tmp_path) -> None:
    """Creating a partition locks all of calls and waits for the writes in flight; readers
    queue behind it. The writer gives up on it quickly and journals that batch instead."""
    empty_pg_store(pg_url)
    writer = writer_for(pg_url, tmp_path, batch_size=100)
    reader = make_engine(pg_url, connect_args={"options": "-c lock_timeout=10s"})
    try:
        with rollups_locked(pg_url, writer) as release:
            for _ in range(100):
                writer.put(call("stuck"))
            # a month with no partition yet, ahead rather than past, which the retention tests count
            unseen_month = datetime(2031, 3, 15, tzinfo=UTC)
            for _ in range(100):
                writer.put(call("late", unseen_month))
            time.sleep(1)  # the writer is now creating the partition, or has given up on it
            for _ in range(3):
                started = time.monotonic()
                with reader.connect() as conn:  # a dashboard reading the calls meanwhile
                    seen = conn.execute(select(func.count()).select_from(calls)).scalar_one()
                assert time.monotonic() - started < 5
                # the partition may have been made before the stuck batch took its locks
                assert seen in (1, 101)
            release()
            assert wait_for(lambda: counts(pg_url)[0] == 201, 30), (counts(pg_url), writer.stats())
    finally:
        writer.shutdown()
        reader.dispose()
    assert counts(pg_url) == (201, 201, 201)


@pytest.mark.postgres
def test_two_connections_storing_the_same_ids_in_any_order_never_deadlock(pg_url) -> None:
    import threading

    from tracking.partitions import ensure_months
    from tracking.store import prepare_batch

    empty_pg_store(pg_url)
    events = [call(f"u{i % 7}") for i in range(20_000)]
    batches = [prepare_batch(events, True), prepare_batch(events[::-1], True)]
    eng = make_engine(pg_url)
    with eng.begin() as conn:
        ensure_months(conn, batches[0].months)
    stored: list[int] = []
    together = threading.Barrier(2)

    def write(batch) -> None:
        together.wait()  # both statements start at once
        with eng.begin() as conn:
            stored.append(write_batch(conn, batch, set(batch.months)))

    lanes = [threading.Thread(target=write, args=(b,)) for b in batches]
    for lane in lanes:
        lane.start()
    for lane in lanes:
        lane.join()
    eng.dispose()
    assert sorted(stored) == [0, 20_000]  # one stored them all, the other found them there
    assert counts(pg_url) == (20_000, 20_000, 20_000)


def test_a_call_recorded_after_shutdown_goes_to_the_journal(store_url, tmp_path) -> None:
    writer = writer_for(store_url, tmp_path)
    writer.put(call("before"))
    assert writer.shutdown(5)
    writer.put(call("after"))  # a host thread that still held the writer
    assert writer.journal.pending() and writer.stats()["spilled"] == 1
    assert counts(store_url)[0] == 1


def test_a_late_success_does_not_undo_a_newer_failure(store_url, tmp_path) -> None:
    from tracking.store import PreparedBatch

    writer = writer_for(store_url, tmp_path)
    health = writer.sink.health
    began = health.downs  # a slow batch starts writing...
    health.down()  # ...another fails meanwhile...
    writer.sink.write(PreparedBatch.of_plain([call("slow")]), began)
    assert not writer.stats()["store_ok"]  # ...the slow one's success proves nothing newer
    writer.sink.write(PreparedBatch.of_plain([call("fresh")]), health.downs)
    assert writer.stats()["store_ok"]
    writer.shutdown()


@pytest.mark.postgres
def test_an_outage_with_two_batches_in_flight_loses_and_repeats_nothing(pg_url, tmp_path) -> None:
    """Batches spread over three new months (partitions made on the way) and a store cut while
    both connections write: each call stored exactly once, the rollups equal to the calls."""
    import threading

    empty_pg_store(pg_url)
    proxy = TcpProxy(make_url(pg_url).port or 5432)
    proxy.start()
    url = make_url(pg_url).set(host="127.0.0.1", port=proxy.port)
    writer = writer_for(url.render_as_string(hide_password=False), tmp_path, batch_size=500)
    months = [datetime(2026, m, 15, tzinfo=UTC) for m in (7, 8, 9)]
    events = [call(f"u{i % 50}", months[i % 3]) for i in range(30_000)]

    def cut_while_writing() -> None:
        wait_for(lambda: writer.counters["written"] > 0, 20)
        proxy.stop()
        time.sleep(0.3)
        proxy.start()

    cutter = threading.Thread(target=cut_while_writing)
    cutter.start()
    try:
        for e in events:
            writer.put(e)
        cutter.join()
        assert writer.flush(30), writer.stats()
        # the journal is replayed once the backoff lets the writer try the store again
        assert wait_for(lambda: not writer.stats()["journal_pending"], 30), writer.stats()
        assert writer.flush(30)
        stats = writer.stats()
    finally:
        writer.shutdown()
        proxy.stop()
    assert stats["write_failures"] >= 1 and stats["spilled"] > 0, stats  # the cut did land
    assert stats["dropped"] == 0 and stats["replayed"] == stats["spilled"]
    assert counts(pg_url) == (30_000, 30_000, 30_000)
    eng = make_engine(pg_url)
    assert_rollups_equal_the_calls(eng)
    eng.dispose()


STUCK_AT_EXIT_HOST = textwrap.dedent(
    """
    import sys, time
    import tracking
    tracking.configure(
        url=sys.argv[1], journal_path=sys.argv[2], shutdown_timeout=2, flush_interval=0.05
    )
    for i in range(50):
        tracking.record(provider="openai", model="gpt-4o", input_tokens=1, user_id="stuck")
    time.sleep(1)  # the batch is in the store, waiting on a lock the test holds
    # exit: it must not wait for that lock
    """
)


@pytest.mark.postgres
def test_exit_with_a_batch_stuck_in_the_store_is_bounded_and_journals_it(pg_url, tmp_path) -> None:
    empty_pg_store(pg_url)
    eng = make_engine(pg_url)
    with eng.begin() as conn:
        write_batch(conn, [call("stuck")])
    journal = tmp_path / "journal.jsonl"
    locker = eng.connect()
    try:
        with locker.begin():
            locker.execute(select(daily_rollups).with_for_update())
            done, elapsed = run_host(STUCK_AT_EXIT_HOST, pg_url, str(journal))
    finally:
        locker.close()
    eng.dispose()
    assert done.returncode == 0, done.stderr
    assert elapsed < 15, elapsed  # shutdown_timeout and start-up, not the lock's holder
    assert len(journal.read_text().splitlines()) == 50
    tracking.configure(url=pg_url, journal_path=str(journal), flush_interval=0.05)
    try:
        assert tracking.flush(20)
    finally:
        tracking.shutdown()
    assert counts(pg_url) == (51, 51, 51)


@pytest.mark.postgres
def test_a_batch_stuck_past_the_write_timeout_goes_to_the_journal(pg_url, tmp_path) -> None:
    empty_pg_store(pg_url)
    writer = writer_for(pg_url, tmp_path, batch_size=100, write_timeout=1)
    try:
        with rollups_locked(pg_url, writer) as release:
            for _ in range(100):
                writer.put(call("stuck"))
            assert wait_for(lambda: writer.stats()["spilled"] == 100, 10), writer.stats()
            assert "statement timeout" in (writer.stats()["last_error"] or "")
            release()
            assert wait_for(lambda: not writer.stats()["journal_pending"], 30), writer.stats()
            assert writer.flush(10)
    finally:
        writer.shutdown()
    assert counts(pg_url) == (101, 101, 101)


def test_rate_limited_log_is_safe_across_threads(monkeypatch) -> None:
    """Two delivery lanes failing together both report to one RateLimitedLog: its check and its
    count must be one step, or one of them raises KeyError (and loses its batch, below)."""
    from tests.conftest import run_together
    from tracking import ratelog

    class Quiet:
        def log(self, *args: object) -> None:
            pass

    monkeypatch.setattr(ratelog, "log", Quiet())
    logs = ratelog.RateLimitedLog(interval=0.0)
    errors: list[BaseException] = []

    def hammer() -> None:
        try:
            for _ in range(20_000):
                logs.warning("store", "x %s", 1)
        except BaseException as exc:
            errors.append(exc)

    run_together(hammer)
    assert errors == []


def test_a_failed_batch_is_journaled_even_if_reporting_the_failure_fails(tmp_path) -> None:
    """Whatever reporting a failed write raises, the batch still reaches the journal: written,
    spilled or dropped, every call is accounted for."""
    from tracking.config import build_settings
    from tracking.writer import Writer

    def unreachable(url: str):
        raise ConnectionError("store down")

    writer = Writer(
        build_settings(
            f"sqlite:///{tmp_path}/s.db",
            journal_path=str(tmp_path / "j.jsonl"),
            flush_interval=0.05,
        ),
        engine_factory=unreachable,
    )
    real_warning = writer.logs.warning

    def racing_warning(key: str, message: str, *args: object) -> None:
        if key == "store":
            raise KeyError(key)  # what RateLimitedLog raises when two lanes race
        real_warning(key, message, *args)

    writer.logs.warning = racing_warning  # type: ignore[method-assign]
    try:
        for _ in range(5):
            writer.put(call("u"))
        assert writer.flush(5)
        s = writer.stats()
    finally:
        writer.shutdown(1)
    assert s["written"] + s["spilled"] + s["dropped"] == s["enqueued"] == 5, s


def test_a_call_put_while_shutdown_runs_is_not_stranded_in_a_dead_queue(store_url, tmp_path):
    """A host thread paused between put()'s "stopping?" check and its append, while shutdown
    drains the queue: the call must still be written or journaled, not left in a queue no
    thread will read again."""
    import threading

    entered, go = threading.Event(), threading.Event()

    class PausingSize(int):
        def __le__(self, other: object) -> bool:  # len(queue) >= size asks this first
            if threading.current_thread().name == "host":
                entered.set()
                go.wait(10)
            return int(self) <= other  # type: ignore[operator]

    writer = writer_for(store_url, tmp_path, queue_size=PausingSize(1000))
    writer.put(call("before"))
    host = threading.Thread(target=writer.put, args=(call("late"),), name="host")
    host.start()
    assert entered.wait(5)
    writer.shutdown(2)
    go.set()
    host.join(5)
    s = writer.stats()
    assert s["written"] + s["spilled"] + s["dropped"] == 2, s


@pytest.mark.postgres
def test_a_silent_store_is_given_up_by_the_kernel_within_a_minute(pg_url, tmp_path) -> None:
    """A store that stops answering mid-statement (no reset, no reply) is noticed by TCP alone:
    the kernel's defaults wait two hours. Read back from the writer's own socket, the options
    that make the kernel drop it after about 25 s of silence or 30 s of unacknowledged data."""
    import socket

    writer = writer_for(pg_url, tmp_path)
    try:
        with writer.sink.engine.connect() as conn:
            raw = conn.connection.dbapi_connection
            assert raw is not None
            sock = socket.socket(fileno=os.dup(raw.fileno()))
            try:
                option = sock.getsockopt
                assert option(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
                idle = option(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE)
                interval = option(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL)
                probes = option(socket.IPPROTO_TCP, socket.TCP_KEEPCNT)
                assert idle + interval * probes <= 60
                assert 0 < option(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) <= 60_000
            finally:
                sock.close()
    finally:
        writer.shutdown(1)


# Calls that validation would refuse, put straight on the writer: each store refuses them.
REFUSED_BY_BOTH = {
    "huge_token_count": {"input_tokens": 2**63},  # BIGINT; sqlite3 raises OverflowError
    "lone_surrogate": {"feature": "bad\ud800"},  # no UTF-8 for it: UnicodeEncodeError
    "huge_cost": {"cost_usd": Decimal(10**11), "cost_source": "provider", "priced": True},
}
REFUSED_BY_POSTGRES = {
    "long_provider": {"provider": "p" * 65},  # VARCHAR(64)
    "long_status": {"status": "s" * 17},  # VARCHAR(16)
    "duration_in_ns": {"duration_ms": 3_000_000_000},  # INTEGER
    "nan_in_tags": {"tags": {"score": float("nan")}},  # not JSON
    "nul_in_user": {"user_id": "a\x00b"},  # text cannot hold NUL
}


def refused_lines(writer) -> list[dict]:
    path = writer.journal.refused_path
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _refused_calls_are_set_aside(url: str, tmp_path, bad: dict) -> None:
    writer = writer_for(url, tmp_path)
    good = [call("good") for _ in range(300)]
    refused = [replace(call("bad"), **bad) for _ in range(3)]
    try:
        for e in [refused[0], *good[:150], refused[1], *good[150:], refused[2]]:
            writer.put(e)
        assert writer.flush(30)
        writer.put(call("later"))
        assert writer.flush(10)
        s = writer.stats()
    finally:
        writer.shutdown(5)
    assert counts(url) == (301, 301, 301)
    assert (s["written"], s["refused"], s["spilled"], s["dropped"]) == (301, 3, 0, 0), s
    assert s["store_ok"] and not s["journal_pending"], s
    lines = refused_lines(writer)
    assert sorted(line["call"]["id"] for line in lines) == sorted(str(e.id) for e in refused)
    assert all(line["error"] for line in lines)
    eng = make_engine(url)
    try:
        assert_rollups_equal_the_calls(eng)
    finally:
        eng.dispose()


@pytest.mark.parametrize("bad", list(REFUSED_BY_BOTH.values()), ids=list(REFUSED_BY_BOTH))
def test_calls_the_store_refuses_are_set_aside_and_the_rest_stored(store_url, tmp_path, bad):
    _refused_calls_are_set_aside(store_url, tmp_path, bad)


@pytest.mark.postgres
@pytest.mark.parametrize("bad", list(REFUSED_BY_POSTGRES.values()), ids=list(REFUSED_BY_POSTGRES))
def test_calls_postgres_refuses_are_set_aside_and_the_rest_stored(pg_url, tmp_path, bad):
    empty_pg_store(pg_url)
    _refused_calls_are_set_aside(pg_url, tmp_path, bad)


@pytest.mark.parametrize("bad", list(REFUSED_BY_BOTH.values())[:2], ids=list(REFUSED_BY_BOTH)[:2])
def test_a_refused_call_in_the_journal_is_set_aside_and_the_rest_replayed(
    store_url, tmp_path, bad
) -> None:
    from tracking.journal import Journal

    refused = replace(call("bad"), **bad)
    before, after = [call("before") for _ in range(40)], [call("after") for _ in range(60)]
    Journal(tmp_path / "j.jsonl").append([*before, refused, *after])  # left by an outage
    writer = writer_for(store_url, tmp_path)
    try:
        writer.start_if_journal_pending()
        assert writer.flush(20)
        s = writer.stats()
    finally:
        writer.shutdown(5)
    assert counts(store_url) == (100, 100, 100)
    assert (s["refused"], s["spilled"], s["journal_pending"], s["store_ok"]) == (1, 0, False, True)
    assert [line["call"]["id"] for line in refused_lines(writer)] == [str(refused.id)]


def test_a_store_failing_while_a_refused_batch_is_split_journals_the_rest() -> None:
    """Splitting stops at the first failure that is not a refusal: what was stored stays, the
    refused calls found so far are set aside, the rest goes back (to the journal) in order."""
    import sqlite3

    from tracking.refused import write_apart

    events = [call(f"u{i}") for i in range(16)]
    bad = {events[3].id, events[11].id}
    written: list[list[CallEvent]] = []

    def write(part: list[CallEvent]) -> None:
        if bad & {e.id for e in part}:
            raise sqlite3.IntegrityError("refused")
        if len(written) == 3:
            raise sqlite3.OperationalError("database is locked")
        written.append(part)

    def refuses(exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.IntegrityError | sqlite3.DataError)

    apart = write_apart(events, write, refuses, sqlite3.DataError("refused"))
    assert [e.id for part in written for e in part] == [e.id for e in events[:8] if e.id not in bad]
    assert [e.id for e, _ in apart.refused] == [events[3].id]
    assert apart.unwritten == events[8:] and isinstance(apart.failure, sqlite3.OperationalError)


@pytest.mark.postgres
def test_a_month_dropped_under_the_writer_is_the_stores_failure_not_a_refusal(pg_url, tmp_path):
    """A partition dropped (by retention, say) after the writer made it: the insert fails
    with a check violation, which is no fault of the calls: journal, and replay makes it again."""
    empty_pg_store(pg_url)
    month = datetime(2031, 3, 5, tzinfo=UTC)  # ahead: no retention test sees it
    writer = writer_for(pg_url, tmp_path)
    eng = make_engine(pg_url)
    try:
        writer.put(call("first", month))
        assert writer.flush(10)
        with eng.begin() as conn:
            conn.exec_driver_sql("DROP TABLE calls_y2031m03")
        writer.put(call("second", month))
        assert wait_for(lambda: counts(pg_url)[0] == 1 and writer.flush(1), 10)
        s = writer.stats()
    finally:
        writer.shutdown(5)
        with eng.begin() as conn:
            conn.exec_driver_sql("DROP TABLE IF EXISTS calls_y2031m03")
        eng.dispose()
    assert (s["refused"], s["write_failures"], s["spilled"], s["replayed"]) == (0, 1, 1, 1), s


def test_a_store_refusing_every_call_keeps_them_in_the_journal(tmp_path) -> None:
    """A store that refuses calls wholesale (a schema older than this tracking, say: here a
    trigger refuses every insert) is not bad input: after a few refusals the writer stops
    splitting, sets nothing aside and journals the batch; once the store takes calls again,
    all of them are stored."""
    from sqlalchemy import text

    from tracking.migrate import upgrade

    url = f"sqlite:///{tmp_path}/s.db"
    engine = make_engine(url)
    upgrade(engine)
    refuse = "CREATE TRIGGER refuse BEFORE INSERT ON calls BEGIN SELECT RAISE(ABORT, 'no'); END"
    with engine.begin() as conn:
        conn.execute(text(refuse))
    writer = writer_for(url, tmp_path)
    try:
        for _ in range(500):
            writer.put(call("u"))
        assert wait_for(lambda: writer.stats()["spilled"] == 500, 20), writer.stats()
        assert writer.stats()["refused"] == 0 and refused_lines(writer) == []
        assert writer.stats()["store_ok"] is False
        with engine.begin() as conn:
            conn.execute(text("DROP TRIGGER refuse"))
        assert wait_for(lambda: counts(url)[0] == 500, 30), writer.stats()
    finally:
        writer.shutdown(5)
        engine.dispose()
