"""The background writer: a bounded queue drained in batches by one thread.

Modelled on Sentry's BackgroundWorker: the caller only appends to a bounded queue (no I/O, no
waiting); a daemon thread writes batches by size or interval. A failed batch goes to the journal
at once and the store is retried with backoff; when it answers again the journal is replayed in
order before anything newer. After ``fork()`` a child starts with an empty queue and its own
thread and connections, while the parent keeps and writes what it had queued.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, text

from tracking.config import Settings
from tracking.db import make_engine, normalize_url
from tracking.events import CallEvent
from tracking.journal import Journal
from tracking.partitions import Month, ensure_months, month_of, next_month
from tracking.pricing import PriceBook, load_price_book
from tracking.store import PreparedBatch, prepare_batch, store_refused, write_batch

log = logging.getLogger("unitwise")

MAX_BACKOFF = 30.0
PARTITION_LOCK_TIMEOUT = "2s"
_SET_LOCK_TIMEOUT = text("SELECT set_config('lock_timeout', :timeout, true)")  # SET LOCAL
_SET_STATEMENT_TIMEOUT = text("SELECT set_config('statement_timeout', :timeout, true)")


class RateLimitedLog:
    """Log a recurring problem at most once per interval, with how often it happened since."""

    def __init__(self, interval: float = 60.0) -> None:
        self.interval = interval
        self._last: dict[str, float] = {}
        self._count: dict[str, int] = {}
        self._lock = threading.Lock()  # host threads and both lanes report problems at once

    def warning(self, key: str, message: str, *args: object) -> None:
        now = time.monotonic()
        with self._lock:
            self._count[key] = self._count.get(key, 0) + 1
            if now - self._last.get(key, -self.interval) < self.interval:
                return
            times = self._count.pop(key)
            self._last[key] = now
        log.warning(message + " (%d time(s) in the last minute)", *args, times)


REFUSALS_PER_BATCH = 16


class RefusesEveryCall(Exception):
    """The store refused more calls of one batch than bad input would explain."""

    def __init__(self, last: BaseException) -> None:
        super().__init__(
            f"the store refused more than {REFUSALS_PER_BATCH} calls of one batch, the last "
            f"with: {error_text(last)}; they wait in the journal (is its schema up to date?)"
        )


class DeliveryLanes:
    """A fixed set of daemon threads that run the batches handed to them, in any free lane.

    Not a ThreadPoolExecutor: Python joins its threads at exit, so a delivery stuck on a store
    that stopped answering would hold the host's exit forever. Daemon lanes leave the bound to
    the exit flush (``shutdown_timeout``), which journals what is still in flight.
    """

    def __init__(self, size: int, name: str) -> None:
        self.size = size
        self._jobs: queue.SimpleQueue[tuple[Future[None], Callable[..., None], tuple[Any, ...]]] = (
            queue.SimpleQueue()
        )
        for lane in range(size):
            threading.Thread(target=self._run, name=f"{name}-{lane}", daemon=True).start()

    def submit(self, fn: Callable[..., None], *args: Any) -> Future[None]:
        future: Future[None] = Future()
        self._jobs.put((future, fn, args))
        return future

    def _run(self) -> None:
        while True:
            future, fn, args = self._jobs.get()
            if fn is _stop_lane:
                return
            future.set_running_or_notify_cancel()
            try:
                future.set_result(fn(*args))
            except BaseException as exc:  # handed to whoever waits on the future
                future.set_exception(exc)

    def shutdown(self) -> None:
        """Let each lane end once the batches handed to it are done."""
        for _ in range(self.size):
            self._jobs.put((Future(), _stop_lane, ()))


def _stop_lane() -> None:
    """The job that ends a lane."""


class Writer:
    def __init__(self, settings: Settings, engine_factory: Callable[[str], Engine] | None = None):
        self.settings = settings
        self._engine_factory = engine_factory or make_engine
        self.journal = Journal(settings.journal_path)
        self.book: PriceBook | None = None
        self.counters = {
            "enqueued": 0,
            "written": 0,
            "duplicates": 0,
            "spilled": 0,
            "replayed": 0,
            "dropped": 0,
            "write_failures": 0,
            "refused": 0,
        }
        self.last_error: str | None = None
        self.logs = RateLimitedLog()
        self._postgres = normalize_url(settings.url).get_backend_name() == "postgresql"
        # SQLite has one writer at a time, so a second connection would only wait for the lock
        self._lanes = max(1, settings.write_connections) if self._postgres else 1
        self._write_timeout = f"{max(1, round(settings.write_timeout * 1000))}ms"
        self._init_runtime()
        _live_writers.add(self)

    def _init_runtime(self) -> None:
        """State that belongs to one process: rebuilt in a forked child."""
        self._pid = os.getpid()
        self._queue: deque[CallEvent] = deque()
        self._wake = threading.Event()
        self._idle = threading.Condition()
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._inflight = 0
        self._held: list[list[CallEvent]] = []  # batches taken from the queue, not yet stored
        self._writing: set[Future[None]] = set()  # batches in the delivery lanes (writer thread)
        self._engine: Engine | None = None
        self._known_months: set[Month] = set()
        self._store_ok = True
        self._downs = 0  # store-down events so far: a late success must not undo a newer one
        self._next_retry = 0.0
        self._backoff = 0.5
        self._next_price_refresh = 0.0
        self._pool: ThreadPoolExecutor | None = None  # prepares the next batch
        self._delivery_pool: DeliveryLanes | None = None  # writes batches, one per connection
        self._lock = threading.Lock()  # counters and store state, shared by delivery threads
        self._migrated = False

    # -- the caller's side: no I/O -------------------------------------------------------------
    def put(self, event: CallEvent) -> bool:
        """Queue an event; a full queue drops it (counted, logged at most once a minute)."""
        if self._pid != os.getpid():
            self._after_fork()
        if self._stopping:  # a host thread still holding a writer that was shut down (rare)
            self._spill([event])
            return True
        if len(self._queue) >= self.settings.queue_size:
            with self._lock:
                self.counters["dropped"] += 1
            self.logs.warning("drop", "unitwise: queue full (%d), call dropped", len(self._queue))
            return False
        self._queue.append(event)
        if self._stopping:  # shutdown began since the check above: its drain may be over
            try:
                self._queue.remove(event)
            except ValueError:
                pass  # the drain took it
            else:
                self._spill([event])
                return True
        with self._lock:  # exact across host threads: += on a dict item is not atomic
            self.counters["enqueued"] += 1
        if self._thread is None:
            self._start()
        if len(self._queue) >= self.settings.batch_size:
            self._wake.set()
        return True

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None and not self._stopping:
                self._thread = threading.Thread(
                    target=self._run, name="unitwise-writer", daemon=True
                )
                self._thread.start()

    def _after_fork(self) -> None:
        if self._engine is not None:
            self._engine.dispose(close=False)  # the parent's connections stay the parent's
        self._init_runtime()

    # -- the writer thread ---------------------------------------------------------------------
    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = self._engine_factory(self.settings.url)
        return self._engine

    def _run(self) -> None:
        while True:
            self._wake.wait(self.settings.flush_interval)
            self._wake.clear()
            try:
                self._cycle()
            except Exception as exc:  # a bug must not kill the thread and lose later calls
                log.exception("unitwise: writer cycle failed: %s", exc)
            if self._stopping and not self._queue:
                break
        _settle(self._writing)
        if self._delivery_pool is not None:
            self._delivery_pool.shutdown()

    def _cycle(self) -> None:
        now = time.monotonic()
        if now >= self._next_price_refresh:
            self.refresh_prices()
        if self._store_ok and self._postgres:
            self._prepare_partitions()
        if self.journal.pending() and self._may_try_store():
            _settle(self._writing)  # batches in flight may add to the journal: they go first
            self._replay_journal()
        self._drain()
        with self._idle:
            self._idle.notify_all()

    def _drain(self) -> None:
        """Write batches until the queue is empty, in a pipeline of three stages.

        This thread takes batches and decides where each goes (store or journal); one preparer
        thread prices and serialises the next batch meanwhile; and up to ``write_connections``
        delivery threads write prepared batches, each in its own transaction on its own
        connection. On PostgreSQL two connections in flight keep the server busy while one
        waits for its reply (bench/ingest, alternating runs: about +20%, medians 37k -> 46k).
        """
        taken = self._take() if self._queue else None
        upcoming = self._submit_prepare(taken) if taken is not None else None
        while taken is not None and upcoming is not None:
            current, batch = taken, upcoming.result()
            taken = self._take() if self._queue else None
            upcoming = self._submit_prepare(taken) if taken is not None else None
            self._dispatch(current, batch)

    def _submit_prepare(self, events: list[CallEvent]) -> Future[PreparedBatch | list[CallEvent]]:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="unitwise-prepare")
        try:
            return self._pool.submit(self._prepare, events)
        except RuntimeError:  # interpreter shutting down: prepare here instead
            return _done_future(self._prepare(events))

    def _dispatch(self, taken: list[CallEvent], batch: PreparedBatch | list[CallEvent]) -> None:
        """Hand a batch to a free delivery lane, or journal it while the store is down.

        Journaled calls go to the store before anything taken after them: when the journal
        holds calls, the batches in flight settle first (they may add to it), then it is
        replayed here. A batch already in flight on the other lane may still land before an
        older one that failed and went to the journal.
        """
        events = batch.events if isinstance(batch, PreparedBatch) else batch
        handed_over = False
        try:
            if self.journal.pending() and self._may_try_store():
                _settle(self._writing)
                self._replay_journal()
            if self.journal.pending() or not self._may_try_store():
                self._spill(events)
                return
            months = batch.months if isinstance(batch, PreparedBatch) else _months(events)
            try:
                self._ensure_partitions(months)
            except Exception as exc:
                self._store_down(exc)
                self._spill(events)
                return
            self._writing = {f for f in self._writing if not f.done()}
            if len(self._writing) >= self._lanes:  # the first free lane, not the oldest batch's
                wait(self._writing, return_when=FIRST_COMPLETED)
            self._writing.add(self._delivery().submit(self._deliver, taken, batch, months))
            handed_over = True
        except Exception as exc:  # a bug: journal the batch rather than lose it
            log.exception("unitwise: handing out a batch failed, journaling it: %s", exc)
            self._spill(events)
        finally:
            if not handed_over:
                self._finished(taken)

    def _may_try_store(self) -> bool:
        return self._store_ok or time.monotonic() >= self._next_retry

    def _ensure_partitions(self, months: set[Month]) -> None:
        """Create the months' partitions before a batch is handed out, in a transaction of
        their own: delivery transactions then never run DDL, nor race each other for it.

        Creating a partition locks all of ``calls`` and waits for the writes in flight, while
        readers queue behind it; so it gives up after ``PARTITION_LOCK_TIMEOUT`` (the batch then
        goes to the journal, to be replayed), instead of stalling every reader of the store.
        """
        missing = months - self._known_months
        if missing and self._postgres:
            with self.engine.begin() as conn:
                conn.execute(_SET_LOCK_TIMEOUT, {"timeout": PARTITION_LOCK_TIMEOUT})
                ensure_months(conn, missing)
        self._known_months |= missing

    def _prepare_partitions(self) -> None:
        """This month's and next month's partitions, made ahead of the calls that need them:
        at a month's turn no batch waits for the lock on ``calls``."""
        this = month_of(datetime.now(UTC))
        try:
            self._ensure_partitions({this, next_month(this)})
        except Exception as exc:  # the batches will try again, and journal on failure
            self.logs.warning("partitions", "unitwise: could not create partitions: %s", exc)

    def _delivery(self) -> DeliveryLanes:
        if self._delivery_pool is None:
            self._delivery_pool = DeliveryLanes(self._lanes, "unitwise-deliver")
        return self._delivery_pool

    def _deliver(
        self, taken: list[CallEvent], batch: PreparedBatch | list[CallEvent], months: set[Month]
    ) -> None:
        """Write one batch (a delivery thread); a failed batch goes to the journal at once,
        but for the calls the store refused, which are set aside."""
        downs = self._downs
        unwritten = batch.events if isinstance(batch, PreparedBatch) else batch
        try:
            unwritten, failure = self._write_or_set_aside(batch, months, downs)
            if failure is not None:
                self._store_down(failure)
        finally:  # whatever reporting the failure does, what was not written reaches the journal
            if unwritten:
                self._spill(unwritten)
            self._finished(taken)

    def _write_or_set_aside(
        self, batch: PreparedBatch | list[CallEvent], months: set[Month], downs: int
    ) -> tuple[list[CallEvent], BaseException | None]:
        """Write a batch; should the store refuse some of its calls, set those aside and store
        the rest. Returns what was not written (for the journal) and the store's failure, or
        ``([], None)`` when every call was stored or set aside."""
        events = batch.events if isinstance(batch, PreparedBatch) else batch
        try:
            self._write(batch, set(months), downs)
        except Exception as exc:
            if not self._refuses(exc):
                return events, exc
            return self._write_apart(events, months, downs, exc)
        return [], None

    def _refuses(self, exc: BaseException) -> bool:
        return store_refused(exc, self.engine.dialect.loaded_dbapi)

    def _write_apart(
        self, events: list[CallEvent], months: set[Month], downs: int, error: BaseException
    ) -> tuple[list[CallEvent], BaseException | None]:
        """Write a batch the store refused (``error``) in halves, and the halves that fail in
        halves, until each refused call stands alone: those are set aside, the others stored.

        Only a batch with a refused call pays for this: some 2 x log2(size) writes per refused
        call. Should the store fail otherwise meanwhile (unreachable, a timeout), this stops
        and returns the calls not yet written, with that failure, for the journal. So it does
        when more than ``REFUSALS_PER_BATCH`` calls of one batch are refused: then the store
        refuses calls wholesale (a schema older than this tracking, say), and splitting a batch
        into thousands of one-call writes would only fill the queue; the calls wait in the
        journal, none set aside, until the store takes them.
        """
        refused: list[tuple[CallEvent, str]] = []
        parts = [events]  # a stack: the next part to write last
        failed: BaseException | None = error  # the error of the part on top, already tried
        try:
            while parts:
                part = parts.pop()
                if failed is None:
                    try:
                        self._write(part, set(months), downs)
                        continue
                    except Exception as exc:
                        if not self._refuses(exc):
                            parts.append(part)
                            return [e for p in reversed(parts) for e in p], exc
                        failed = exc
                if len(part) == 1:
                    refused.append((part[0], error_text(failed)))
                    if len(refused) > REFUSALS_PER_BATCH:  # not one bad call: every call
                        unwritten = [e for e, _ in refused] + [
                            e for p in reversed(parts) for e in p
                        ]
                        refused.clear()
                        return unwritten, RefusesEveryCall(failed)
                else:
                    middle = len(part) // 2
                    parts += (part[middle:], part[:middle])
                failed = None
            return [], None
        finally:
            self._set_aside(refused)

    def _take(self) -> list[CallEvent]:
        batch: list[CallEvent] = []
        with self._idle:
            while self._queue and len(batch) < self.settings.batch_size:
                batch.append(self._queue.popleft())
            self._inflight += len(batch)
            self._held.append(batch)
        return batch

    def _finished(self, batch: list[CallEvent]) -> None:
        with self._idle:
            self._inflight -= len(batch)
            self._held = [held for held in self._held if held is not batch]
            self._idle.notify_all()

    def _prepare(self, events: list[CallEvent]) -> PreparedBatch | list[CallEvent]:
        """Price and serialise a batch; on any bug, hand back the plain events (never lose them)."""
        try:
            self._price(events)
            return prepare_batch(events, self._postgres)
        except Exception as exc:
            log.exception("unitwise: preparing a batch failed, writing it plainly: %s", exc)
            return events

    def _write(
        self, batch: PreparedBatch | list[CallEvent], known_months: set[Month], downs: int
    ) -> int:
        with self.engine.begin() as conn:
            if self._postgres:  # a batch stuck on a lock goes to the journal after a bound
                conn.execute(_SET_STATEMENT_TIMEOUT, {"timeout": self._write_timeout})
            new = write_batch(conn, batch, known_months)
        size = (
            len(batch.events) if isinstance(batch, PreparedBatch) else len(set(e.id for e in batch))
        )
        with self._lock:
            self.counters["written"] += new
            self.counters["duplicates"] += size - new
        self._store_up(downs)
        return new

    def _replay_journal(self) -> None:
        def write(events: list[CallEvent]) -> None:
            """A batch of the journal to the store; its refused calls are set aside at once,
            so they never hold up the calls after them (a replay that fails later on repeats
            them: the refused file may then hold a call twice, with one id)."""
            self._price(events)
            months = _months(events)
            self._ensure_partitions(months)
            failure = self._write_or_set_aside(events, months, self._downs)[1]
            if failure is not None:
                raise failure
            with self._lock:
                self.counters["replayed"] += len(events)

        try:
            replayed = self.journal.replay(write, self.settings.batch_size)
            if replayed:
                log.info("unitwise: replayed %d call(s) from %s", replayed, self.journal.path)
        except Exception as exc:
            self._store_down(exc)

    def _spill(self, batch: list[CallEvent]) -> None:
        try:
            self.journal.append(batch)  # flock'd: two delivery threads may spill at once
            with self._lock:
                self.counters["spilled"] += len(batch)
        except OSError as exc:
            with self._lock:
                self.counters["dropped"] += len(batch)
            log.error(
                "unitwise: journal %s failed, %d call(s) lost: %s",
                self.journal.path,
                len(batch),
                exc,
            )

    def _set_aside(self, refused: list[tuple[CallEvent, str]]) -> None:
        """Calls the store refused to the refused file beside the journal (counted, logged)."""
        if not refused:
            return
        try:
            self.journal.set_aside(refused)
        except OSError as exc:
            with self._lock:
                self.counters["dropped"] += len(refused)
            path, n = self.journal.refused_path, len(refused)
            log.error("unitwise: %s failed, %d refused call(s) lost: %s", path, n, exc)
            return
        with self._lock:
            self.counters["refused"] += len(refused)
        self.logs.warning(
            "refused",
            "unitwise: the store refused %d call(s), set aside in %s: %s",
            len(refused),
            self.journal.refused_path,
            refused[-1][1],
        )

    def _store_down(self, exc: BaseException) -> None:
        error = error_text(exc)
        if "does not exist" in error or "no such table" in error:
            error += " (run: python -m tracking migrate --url ...)"
        with self._lock:
            self.counters["write_failures"] += 1
            self._downs += 1
            self.last_error = error
            if self._store_ok:
                self._backoff = 0.5
            else:
                self._backoff = min(self._backoff * 2, MAX_BACKOFF)
            self._store_ok = False
            self._next_retry = time.monotonic() + self._backoff
            # the store may have lost partitions meanwhile (recreated, or a month dropped)
            self._known_months.clear()
        self.logs.warning(
            "store", "unitwise: store unavailable, calls go to the journal: %s", error
        )

    def _store_up(self, downs: int) -> None:
        """Mark the store up after a write that began after the last failure (``downs``, read
        before it): a slow batch that succeeds after another failed must not undo that."""
        if self._store_ok:
            return
        with self._lock:
            if self._store_ok or self._downs != downs:
                return
            log.info("unitwise: store reachable again")
            self._store_ok = True
            self._backoff = 0.5

    def refresh_prices(self) -> None:
        """Reload the price book (at most a refresh interval stale); keep the old one on error."""
        self._next_price_refresh = time.monotonic() + self.settings.price_refresh_interval
        try:
            if not self._postgres and not self._migrated:
                self._migrate_embedded()
            with self.engine.connect() as conn:
                self.book = load_price_book(conn)
        except Exception as exc:
            self._next_price_refresh = time.monotonic() + min(self._backoff * 2, MAX_BACKOFF)
            self.logs.warning("prices", "unitwise: could not load prices: %s", exc)

    def _migrate_embedded(self) -> None:
        """The embedded SQLite store keeps its own schema current; a shared PostgreSQL store is
        migrated by whoever runs it (``python -m tracking migrate``)."""
        from tracking.migrate import upgrade

        upgrade(self.engine)
        self._migrated = True

    def _price(self, events: list[CallEvent]) -> None:
        book = self.book
        if book is None:
            return
        for e in events:
            if not e.priced:
                price_event(book, e)

    # -- control -------------------------------------------------------------------------------
    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued is in the store or the journal; False on timeout.

        While the store answers, this includes replaying a journal left by an earlier outage.
        """
        if self._pid != os.getpid():
            self._after_fork()
        if self._thread is None:
            if not self._queue and not self.journal.pending():
                return True
            self._start()
        deadline = time.monotonic() + timeout
        self._wake.set()
        with self._idle:
            while self._queue or self._inflight or (self._store_ok and self.journal.pending()):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._wake.set()
                self._idle.wait(min(remaining, 0.05))
        return True

    def shutdown(self, timeout: float | None = None) -> bool:
        """Flush within ``timeout``, journal what is left, stop the thread, close connections."""
        timeout = self.settings.shutdown_timeout if timeout is None else timeout
        done = self.flush(timeout)
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(max(0.1, timeout / 2) if not done else timeout)
        leftover: list[CallEvent] = []
        if self._thread is not None and self._thread.is_alive():
            # the writer is stuck (a store that does not answer): journal what it holds too;
            # should it still get through, the ids make the second write a no-op
            with self._idle:
                for batch in self._held:
                    leftover.extend(batch)
        while self._queue:
            leftover.append(self._queue.popleft())
        if leftover:
            self._spill(leftover)
        if self._pool is not None:
            self._pool.shutdown(wait=False)  # the lanes end with the writer thread
        if self._engine is not None and (self._thread is None or not self._thread.is_alive()):
            self._engine.dispose()
        _live_writers.discard(self)
        return done and not leftover

    def start_if_journal_pending(self) -> None:
        """At start-up, replay what a crashed or cut-off process left in the journal."""
        if self.journal.pending():
            self._start()
            self._wake.set()

    def stats(self) -> dict[str, Any]:
        return {
            **self.counters,
            "queued": len(self._queue) + self._inflight,
            "journal_pending": self.journal.pending(),
            "store_ok": self._store_ok,
            "last_error": self.last_error,
            "prices_loaded": self.book is not None,
        }


def price_event(book: PriceBook, event: CallEvent) -> None:
    """Price an event with the book (a provider-reported cost is kept as it is)."""
    if event.cost_source == "provider":
        event.priced = True
        return
    quote = book.quote(event.provider, event.model, event.occurred_at, event.usage(), event.batch)
    event.cost_usd = quote.cost
    event.price_version_id = quote.version_id
    event.cost_source = "computed" if quote.cost is not None else None
    event.priced = True


def error_text(exc: BaseException) -> str:
    """An error in one line: its type and the first line of its message."""
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:500]


def _settle(writing: set[Future[None]]) -> None:
    """Wait for the batches in flight (their delivery never raises: failures are journaled)."""
    wait(writing)
    writing.clear()


def _months(events: list[CallEvent]) -> set[Month]:
    return {month_of(e.occurred_at) for e in events}


def _done_future(value: PreparedBatch | list[CallEvent]) -> Future[PreparedBatch | list[CallEvent]]:
    future: Future[PreparedBatch | list[CallEvent]] = Future()
    future.set_result(value)
    return future


_live_writers: weakref.WeakSet[Writer] = weakref.WeakSet()


def _reinit_in_child() -> None:
    for writer in list(_live_writers):
        writer._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_in_child)
