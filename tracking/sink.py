"""The store sink: where the writer's batches go (in OpenTelemetry's terms, its exporter).

It holds the engine, writes a prepared batch in one transaction (bounded by the statement
timeout on PostgreSQL), splits a batch the store refuses so that only the refused calls are
set aside, makes the months' partitions ahead of the batches, and makes the embedded store
ready before its first use. What is not written it hands back: the writer journals it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Engine, inspect, text

from tracking.config import Settings
from tracking.counters import Counters
from tracking.db import make_engine, normalize_url
from tracking.events import CallEvent
from tracking.health import StoreHealth, error_text
from tracking.partitions import Month, ensure_months, month_of, next_month
from tracking.pricing import PriceBook, load_price_book
from tracking.ratelog import RateLimitedLog
from tracking.refused import Apart, write_apart
from tracking.revision import is_current
from tracking.store import PreparedBatch, store_refused, write_batch
from tracking.time_index import summarize_new_ranges
from tracking.watchdog import Watchdog

log = logging.getLogger("unitwise")

PARTITION_LOCK_TIMEOUT = "2s"
_SET_LOCK_TIMEOUT = text("SELECT set_config('lock_timeout', :timeout, true)")  # SET LOCAL
_SET_STATEMENT_TIMEOUT = text("SELECT set_config('statement_timeout', :timeout, true)")


class StoreSink:
    def __init__(
        self,
        settings: Settings,
        counters: Counters,
        logs: RateLimitedLog,
        engine_factory: Callable[[str], Engine] | None = None,
    ) -> None:
        self.settings = settings
        self.counters = counters
        self.logs = logs
        self.last_error: str | None = None
        self._engine_factory = engine_factory or make_engine
        self.postgres = normalize_url(settings.url).get_backend_name() == "postgresql"
        # SQLite has one writer at a time, so a second connection would only wait for the lock
        self.lanes = max(1, settings.write_connections) if self.postgres else 1
        self._write_timeout = f"{max(1, round(settings.write_timeout * 1000))}ms"
        # past the statement timeout (which ends a wait on a lock with a clean error), the
        # watchdog ends a wait on a store that went silent
        self.watchdog = Watchdog(watchdog_limit(settings.write_timeout), self._timed_out)
        self._reset()

    def _reset(self) -> None:
        """State that belongs to one process: rebuilt in a forked child."""
        self._engine: Engine | None = None
        self._known_months: set[Month] = set()
        self.health = StoreHealth()
        self.ready = False  # ``prepare`` has run

    def after_fork(self) -> None:
        if self._engine is not None:
            self._engine.dispose(close=False)  # the parent's connections stay the parent's
        self.watchdog.after_fork()
        self._reset()

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            engine = self._engine_factory(self.settings.url)
            if self.postgres:
                self.watchdog.watch(engine)
            self._engine = engine
        return self._engine

    def _timed_out(self) -> None:
        self.counters.add("timeouts")

    def watched(self, what: str) -> contextlib.AbstractContextManager[None]:
        """A PostgreSQL operation under the watchdog (SQLite has its busy timeout, no socket)."""
        return self.watchdog.guard(what) if self.postgres else contextlib.nullcontext()

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()

    # -- before the first batch ----------------------------------------------------------------
    def prepare(self) -> bool:
        """Make the store ready for its first use (the writer thread does, before anything else);
        False when it could not (writes then fail too, and journal; tried again after a backoff).

        The embedded SQLite store keeps its own schema current, and one that tracking creates
        here gets the reference price catalogue, as ``python -m tracking migrate`` gives it:
        without it, every call would be stored unpriced. A shared PostgreSQL store is migrated
        by whoever runs it.
        """
        try:
            if not self.postgres:
                self._migrate_embedded()
        except Exception as exc:
            self.logs.warning("prepare", "unitwise: could not make the store ready: %s", exc)
            return False
        self.ready = True
        return True

    def _migrate_embedded(self) -> None:
        """Bring the embedded store to this release's schema, but leave one that a newer
        release has migrated as it is: upgrading it would fail at every try, and the prices
        would never load (every call stored unpriced)."""
        with self.engine.connect() as conn:
            if is_current(conn):  # the usual start: no Alembic to import, no scripts to load
                return
        from tracking.migrate import unknown_revisions, upgrade
        from tracking.schema import price_versions

        with self.engine.connect() as conn:
            created = not inspect(conn).has_table(price_versions.name)
            newer = unknown_revisions(conn)
        if newer:
            log.warning(
                "unitwise: the store is at revision %s, newer than this tracking knows;"
                " writing to it as it is (upgrade tracking to match)",
                ", ".join(sorted(newer)),
            )
            return
        upgrade(self.engine, quiet=True)
        if created:
            self._load_catalogue()

    def _load_catalogue(self) -> None:
        """The reference catalogue into an empty price table (heavy: the writer thread only)."""
        from tracking.catalogue_store import load_catalogue_if_empty

        with self.engine.begin() as conn:
            written = load_catalogue_if_empty(conn)
        if written:
            log.info("unitwise: loaded the reference price catalogue (%d versions)", written)

    def load_prices(self) -> PriceBook:
        with self.watched("loading prices"), self.engine.connect() as conn:
            return load_price_book(conn)

    # -- partitions ----------------------------------------------------------------------------
    def ensure_partitions(self, months: set[Month]) -> None:
        """Create the months' partitions before a batch is handed out, in a transaction of
        their own: delivery transactions then never run DDL, nor race each other for it.

        Creating a partition locks all of ``calls`` and waits for the writes in flight, while
        readers queue behind it; so it gives up after ``PARTITION_LOCK_TIMEOUT`` (the batch then
        goes to the journal, to be replayed), instead of stalling every reader of the store.
        """
        missing = months - self._known_months
        if missing and self.postgres:
            with self.watched("making partitions"), self.engine.begin() as conn:
                conn.execute(_SET_LOCK_TIMEOUT, {"timeout": PARTITION_LOCK_TIMEOUT})
                ensure_months(conn, missing)
        self._known_months |= missing

    def prepare_partitions(self) -> None:
        """This month's and next month's partitions, made ahead of the calls that need them:
        at a month's turn no batch waits for the lock on ``calls``. Raises on failure."""
        this = month_of(datetime.now(UTC))
        self.ensure_partitions({this, next_month(this)})

    def summarize_time_index(self) -> int:
        """One pass of the calls' time index over the rows added since the last (PostgreSQL;
        ``tracking.time_index`` says why the writer does it)."""
        with self.watched("summarizing the time index"), self.engine.begin() as conn:
            return summarize_new_ranges(conn)

    def forget_months(self) -> None:
        """After a failure: the store may have lost partitions (recreated, a month dropped)."""
        self._known_months.clear()

    # -- batches -------------------------------------------------------------------------------
    def write(self, batch: PreparedBatch, downs: int) -> int:
        """Write a batch whose partitions exist, in one transaction; returns how many calls
        were new. ``downs`` is the health's count of failures before the write began."""
        with self.watched("a batch"), self.engine.begin() as conn:
            if self.postgres:  # a batch stuck on a lock goes to the journal after a bound
                conn.execute(_SET_STATEMENT_TIMEOUT, {"timeout": self._write_timeout})
            new = write_batch(conn, batch, set(batch.months))
        self.counters.add("written", new)
        self.counters.add("duplicates", batch.size - new)
        if self.health.up(downs):
            log.info("unitwise: store reachable again")
        return new

    def down(self, exc: BaseException) -> None:
        """A write failed on the store (not on its data): back off, and say why."""
        error = error_text(exc)
        if "does not exist" in error or "no such table" in error:
            error += " (run: python -m tracking migrate --url ...)"
        self.counters.add("write_failures")
        self.last_error = error
        self.health.down()
        self.forget_months()
        self.logs.warning(
            "store", "unitwise: store unavailable, calls go to the journal: %s", error
        )

    def refuses(self, exc: BaseException) -> bool:
        return store_refused(exc, self.engine.dialect.loaded_dbapi)

    def deliver(self, batch: PreparedBatch, downs: int) -> Apart:
        """Write a batch; should the store refuse some of its calls, find those (to be set
        aside) and store the rest. What was not written comes back with the store's failure."""
        try:
            self.write(batch, downs)
        except Exception as exc:
            if not self.refuses(exc):
                return Apart(unwritten=batch.events, failure=exc)

            def write_part(part: list[CallEvent]) -> int:
                return self.write(PreparedBatch.of_plain(part), downs)

            return write_apart(batch.events, write_part, self.refuses, exc)
        return Apart()


def watchdog_limit(write_timeout: float) -> float:
    """How long a store operation may go without an answer: the statement timeout, then as
    long again up to 5 s for the server's own cancel to come back."""
    return write_timeout + min(write_timeout, 5.0)
