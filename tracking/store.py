"""Writing a batch of calls: one transaction stores new calls and adds them to every daily rollup.

PostgreSQL takes the COPY path of ``pg_copy``; SQLite takes multi-row inserts here.

``call_ids`` decides which events are new: an id already there (a retried batch, a replayed
journal, the same ``call_id`` recorded twice) is skipped, and only new calls reach the rollups,
so every write is idempotent.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Table, insert
from sqlalchemy.exc import DataError, IntegrityError, StatementError

from tracking.events import CallEvent
from tracking.partitions import Month, ensure_months, month_of
from tracking.schema import (
    ROLLUP_COUNTS,
    ROLLUP_KEYS,
    ROLLUP_TABLES,
    ROLLUP_TOTALS,
    TOKEN_FIELDS,
    call_ids,
    calls,
    rollup_keys,
)


def store_refused(exc: BaseException, dbapi: Any) -> bool:
    """Whether a write failed on its data (a value too long or too large for its column, text
    the driver cannot encode): it fails again at every retry, so the writer splits the batch to
    set the refused calls aside. Any other failure (unreachable, a timeout, a lock) is the
    store's, and the batch waits in the journal for it.

    ``dbapi`` is the driver's module: pg_copy's COPY raises the driver's errors unwrapped.
    """
    orig = exc.orig if isinstance(exc, StatementError) else exc  # what the driver raised
    if isinstance(orig, UnicodeError | OverflowError):  # sqlite3 raises both, psycopg2 the first
        return True
    if isinstance(exc, DataError | IntegrityError) or isinstance(
        orig, (dbapi.DataError, dbapi.IntegrityError)
    ):  # a missing partition (retention dropped a month the writer knew) is no fault of the data
        return getattr(orig, "pgcode", None) != CHECK_VIOLATION
    return False


CHECK_VIOLATION = "23514"


def rollup_rows(events: Iterable[CallEvent]) -> list[dict[str, Any]]:
    """Sum events into one row per (day, user, feature, provider, model), sorted by key."""
    totals: dict[tuple[Any, ...], dict[str, Any]] = {}
    for e in events:
        key = (e.occurred_at.date(), e.user_id or "", e.feature or "", e.provider, e.model)
        row = totals.get(key)
        if row is None:
            row = dict(zip(ROLLUP_KEYS, key, strict=True))
            row.update({name: 0 for name in ROLLUP_COUNTS})
            row["cost_usd"] = Decimal(0)
            totals[key] = row
        row["calls"] += 1
        if e.status != "ok":
            row["error_calls"] += 1
        if e.cost_usd is None:
            row["unpriced_calls"] += 1
        else:
            row["cost_usd"] += e.cost_usd
        for name in TOKEN_FIELDS:
            value = getattr(e, name)
            if value:
                row[name] += value
        if e.duration_ms:
            row["duration_ms_sum"] += e.duration_ms
    return [totals[key] for key in sorted(totals)]


def regroup(rows: Iterable[dict[str, Any]], keys: Sequence[str]) -> list[dict[str, Any]]:
    """Sum ``rollup_rows`` into the grain of a narrower rollup (``keys``), sorted by key."""
    totals: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        key = tuple(row[name] for name in keys)
        into = totals.get(key)
        if into is None:
            totals[key] = {name: row[name] for name in (*keys, *ROLLUP_TOTALS)}
        else:
            for name in ROLLUP_TOTALS:
                into[name] += row[name]
    return [totals[key] for key in sorted(totals)]


def _add_to(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Upsert rows into a rollup table, adding to the rows already there (SQLite)."""
    from sqlalchemy.dialects import sqlite

    upsert = sqlite.insert(table)
    upsert = upsert.on_conflict_do_update(
        index_elements=[table.c[k] for k in rollup_keys(table)],
        set_={name: table.c[name] + upsert.excluded[name] for name in ROLLUP_TOTALS},
    )
    conn.execute(upsert, rows)


@dataclass
class PreparedBatch:
    """A batch ready to write: unique by id, its months known, its COPY text made (PostgreSQL).

    Preparing is pure CPU work, so the writer prepares the next batch while this one is written.
    """

    events: list[CallEvent]
    months: set[Month]
    copy_text: str | None = None
    plain: bool = False  # the events as given: ``write_batch`` prepares them itself

    @classmethod
    def of_plain(cls, events: Sequence[CallEvent]) -> PreparedBatch:
        """Events not deduplicated nor serialised: a batch whose preparing failed (a bug: it is
        written as it came), a part of a refused batch, a journal's batch."""
        return cls(list(events), {month_of(e.occurred_at) for e in events}, plain=True)

    @property
    def size(self) -> int:
        """How many distinct calls the batch holds."""
        return len({e.id for e in self.events}) if self.plain else len(self.events)


def prepare_batch(events: Sequence[CallEvent], for_postgres: bool) -> PreparedBatch:
    # imported here: the PostgreSQL dialect costs 20 ms of the host's import time otherwise
    from tracking.pg_copy import copy_text

    unique: dict[Any, CallEvent] = {}
    for e in events:
        unique.setdefault(e.id, e)
    batch = list(unique.values())
    months = {month_of(e.occurred_at) for e in batch}
    return PreparedBatch(batch, months, copy_text(batch) if for_postgres and batch else None)


def write_batch(
    conn: Connection,
    events: Sequence[CallEvent] | PreparedBatch,
    known_months: set[Month] | None = None,
) -> int:
    """Store the events not stored yet and add them to the rollups; returns how many were new.

    Runs inside the caller's transaction, so a failure leaves nothing behind (the caller must
    then forget ``known_months``, as the writer does).
    """
    postgres = conn.dialect.name == "postgresql"
    if not isinstance(events, PreparedBatch):
        batch = prepare_batch(events, postgres)
    else:
        batch = prepare_batch(events.events, postgres) if events.plain else events
    if not batch.events:
        return 0
    if known_months is None or not batch.months <= known_months:
        ensure_months(conn, batch.months - (known_months or set()))
        if known_months is not None:
            known_months |= batch.months
    if postgres:
        from tracking.pg_copy import copy_text, write_new_calls

        text = batch.copy_text if batch.copy_text is not None else copy_text(batch.events)
        return write_new_calls(conn, text)
    from sqlalchemy.dialects import sqlite

    guard = (
        sqlite.insert(call_ids)
        .on_conflict_do_nothing(index_elements=[call_ids.c.id])
        .returning(call_ids.c.id)
    )
    new_ids = set(
        conn.execute(
            guard, [{"id": e.id, "occurred_at": e.occurred_at} for e in batch.events]
        ).scalars()
    )
    fresh = [e for e in batch.events if e.id in new_ids]
    if not fresh:
        return 0
    conn.execute(insert(calls), [e.to_row() for e in fresh])
    finest = rollup_rows(fresh)
    for table in ROLLUP_TABLES:
        keys = rollup_keys(table)
        _add_to(conn, table, finest if keys == ROLLUP_KEYS else regroup(finest, keys))
    return len(fresh)
