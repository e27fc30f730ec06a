"""Repricing stored calls with the price book as it is now: previewed, batched, idempotent, audited.

A call changes when the version in force at its time gives it another cost or another version.
Each batch is one transaction that re-reads its calls under a lock (``FOR UPDATE`` on
PostgreSQL; SQLite's write lock, taken first), updates them and moves the differences of cost
and of unpriced calls into every rollup table: a concurrent writer, or a second reprice, then
cannot make a rollup drift from the sums over ``calls``, and a second run finds nothing to do.
Provider-reported costs are never selected.

On PostgreSQL a batch's calls are updated by one statement from arrays bound as parameters,
and each rollup table by one more (``_update_calls_pg``, ``_move_deltas``), on a thread of its
own while the next batch is read and priced; SQLite updates row by row (``executemany``).
Either way every call is priced by ``_price_rows``, as ``quote_call`` prices it, in whole
nano-dollars. Measured in bench/README.md (reprice).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cache
from operator import itemgetter
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    Date,
    DateTime,
    Engine,
    Integer,
    Numeric,
    Row,
    Table,
    Text,
    Uuid,
    and_,
    bindparam,
    case,
    cast,
    false,
    func,
    literal,
    null,
    select,
    type_coerce,
    update,
)

from tracking.audit import record_change
from tracking.pg_arrays import numbers_array as _numbers
from tracking.pg_arrays import texts_array as _texts
from tracking.pg_arrays import unnest_arrays as _unnest
from tracking.pricing import PriceBook, Quote, load_price_book
from tracking.reprice_preview import Preview, Selection, Sums
from tracking.schema import (
    ROLLUP_KEYS,
    ROLLUP_TABLES,
    TOKEN_FIELDS,
    calls,
    rollup_keys,
)
from tracking.sqltypes import NANO, NANOS_PER_DOLLAR

log = logging.getLogger("unitwise")

# (batch number, calls read so far, calls changed so far)
Progress = Callable[[int, int, int], None]


def quote_call(book: PriceBook, row: Row[Any]) -> Quote:
    """The call priced afresh, with the usage built as ``CallEvent.usage()`` builds it."""
    usage: dict[str, Any] = {name: row._mapping[name] for name in TOKEN_FIELDS}
    if row.units:
        usage.update(row.units)
    return book.quote(row.provider, row.model, row.occurred_at, usage, row.batch)


def plan_reprice(
    conn: Connection,
    provider: str | None = None,
    models: Sequence[str] = (),
    start: date | None = None,
    end: date | None = None,
    unpriced_only: bool = False,
    book: PriceBook | None = None,
) -> Preview:
    """What a reprice of this selection would do, from the calls as stored now; writes nothing."""
    selection = Selection(provider, tuple(models), start, end, unpriced_only)
    book = load_price_book(conn) if book is None else book
    preview = Preview(selection)
    query = select(*_batch_columns(conn.dialect.name == "postgresql"))
    result = conn.execution_options(yield_per=10_000).execute(query.where(*selection.conditions()))
    for rows in result.partitions():
        _add_to_preview(preview, _price_rows(book, rows))
    return preview


@dataclass
class RepriceResult:
    """What a run did: the totals of the calls it read (before and after), batches, audit row."""

    preview: Preview
    batches: int
    audit_id: int


# Pricing lets go of the GIL every so many calls: a writing thread that has its reply from the
# server would otherwise wait out Python's switch interval (5 ms) at every statement.
_PAUSE_EVERY = 500

# Batches being written at once on PostgreSQL, each in its own transaction on its own
# connection, while the caller's thread reads and prices the next (see ``apply_reprice``).
WRITERS = 2


def apply_reprice(
    engine: Engine,
    provider: str | None = None,
    models: Sequence[str] = (),
    start: date | None = None,
    end: date | None = None,
    unpriced_only: bool = False,
    batch_size: int = 10_000,
    progress: Progress | None = None,
    who: str = "cli",
    note: str | None = None,
) -> RepriceResult:
    """Reprice the selection in batches of ``batch_size`` calls by id, one transaction each; the
    audit row goes in with the last batch (or alone, "nothing to change"), once every batch
    before it is committed. A run of several batches also writes a "reprice started" row with
    its first batch, and one that fails after some are committed a "reprice failed" row (how
    many batches and changed calls were committed, and the error), so the log holds every
    change, finished or not; running again finishes the work.

    On PostgreSQL the calling thread reads and prices a batch while up to ``WRITERS`` batches
    before it are written (calls, rollups, commit) on threads of their own, so that the
    server's writing and Python's pricing overlap. Each batch still holds the lock on its own
    calls from its read to its commit, and every batch takes its locks in one order (calls by
    id, then rollup rows table by table in key order, as the writer does): batches can only
    wait for one another, never deadlock. ``progress`` is called on the calling thread as each
    batch is committed, in order.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    selection = Selection(provider, tuple(models), start, end, unpriced_only)
    with engine.connect() as conn:
        book = load_price_book(conn)
    preview = Preview(selection)
    after_id: Any = None
    batches = 0
    threads = WRITERS if engine.dialect.name == "postgresql" else 0
    writes = _Writes(threads, progress)
    try:
        with writes:
            while True:
                conn = engine.connect()
                handed_over = False
                try:
                    conn.begin()
                    rows = _lock_batch(conn, selection, after_id, batch_size)
                    priced = _Priced()
                    for begin in range(0, len(rows), _PAUSE_EVERY):
                        _price_rows(book, rows[begin : begin + _PAUSE_EVERY], priced)
                        if threads:  # a writing thread waiting for the GIL takes it now
                            time.sleep(0)
                    _add_to_preview(preview, priced)
                    last = len(rows) < batch_size  # a full batch may have more after it
                    if rows:
                        batches += 1
                        after_id = rows[-1][0]
                    if batches == 1 and not last:  # committed with the first of several
                        _audit_start(conn, selection, who, note, batch_size)
                    counts = (batches, preview.selected, preview.changed)
                    if threads and not last:
                        writes.submit(conn, priced, counts)
                        handed_over = True  # the writing thread commits and closes it
                        continue
                    writes.finish()
                    _write_batch(conn, priced)
                    if rows and progress is not None:
                        progress(*counts)
                    if last:
                        audit_id = _audit(conn, preview, who, note)
                    conn.commit()
                    if last:
                        return RepriceResult(preview, batches, audit_id)
                    writes.committed(len(priced.changes))
                finally:
                    if not handed_over:
                        conn.close()  # rolls back what was not committed
    except Exception as error:
        if writes.batches_committed:
            _audit_failure(engine, selection, writes, error, who, note)
        raise


class _Writes:
    """Batches written and committed on threads of their own while the caller prices the next;
    ``progress`` is called on the caller's thread as each one is committed, in order. It also
    counts the batches committed (on any thread) and their changed calls, for the audit row of
    a run that fails part way."""

    def __init__(self, threads: int, progress: Progress | None) -> None:
        self.threads = threads
        self.progress = progress
        self.pool = ThreadPoolExecutor(max(threads, 1), thread_name_prefix="reprice-write")
        self.pending: deque[tuple[Future[None], tuple[int, int, int], int]] = deque()
        self.batches_committed = 0
        self.calls_changed = 0

    def committed(self, changed: int) -> None:
        """Count a batch committed, with ``changed`` calls."""
        self.batches_committed += 1
        self.calls_changed += changed

    def submit(self, conn: Connection, priced: _Priced, counts: tuple[int, int, int]) -> None:
        """Write the batch read on ``conn`` once a thread is free (the oldest batch done)."""
        while len(self.pending) >= self.threads:
            self._finish_oldest()
        done = self.pool.submit(_write_and_commit, conn, priced)
        self.pending.append((done, counts, len(priced.changes)))

    def finish(self) -> None:
        """Wait until every batch handed over is committed; raises a batch's error."""
        while self.pending:
            self._finish_oldest()

    def _finish_oldest(self) -> None:
        done, counts, changed = self.pending.popleft()
        done.result()
        self.committed(changed)
        if self.progress is not None:
            self.progress(*counts)

    def __enter__(self) -> _Writes:
        return self

    def __exit__(self, *_exc: object) -> None:
        for done, _counts, changed in self.pending:  # after an error: the writes in flight end
            if done.exception() is None:
                self.committed(changed)
        self.pending.clear()
        self.pool.shutdown()


def _write_and_commit(conn: Connection, priced: _Priced) -> None:
    """A writing thread's part of a batch: its writes and its commit (or rollback)."""
    with conn:
        _write_batch(conn, priced)
        conn.commit()


_TEXT_ID = Uuid(as_uuid=False)  # ids bound as the text PostgreSQL gave them as
_ID_AS_READ = {True: _TEXT_ID, False: calls.c.id.type}


def _lock_batch(conn: Connection, selection: Selection, after_id: Any, limit: int) -> list[Any]:
    """The next calls of the selection by id, read inside the batch's transaction under a lock,
    so their costs cannot change between this read and the batch's commit."""
    postgres = conn.dialect.name == "postgresql"
    if not postgres:
        # a write that matches nothing takes SQLite's write lock now: the reads below then see
        # the latest commit, and no other writer commits before this transaction does
        conn.execute(update(calls).where(false()).values(cost_source=calls.c.cost_source))
    query = select(*_batch_columns(postgres)).where(*selection.conditions())
    if after_id is not None:  # the last id of the batch before, as read
        query = query.where(calls.c.id > bindparam("after_id", after_id, _ID_AS_READ[postgres]))
    query = query.order_by(calls.c.id).limit(limit)
    if not postgres:
        return list(conn.execute(query))
    result = conn.execute(query.with_for_update())
    try:
        # the driver's own tuples: none of these columns has a result processor, so they hold
        # what Rows would, and building Rows cost 1.5 µs a call more (bench/README.md, reprice)
        return list(result.cursor.fetchall())
    finally:
        result.close()


def _batch_columns(postgres: bool) -> tuple[ColumnElement[Any], ...]:
    """What a reprice reads of a call, in ``_price_rows``' order. The cost comes as whole
    nano-dollars and the UTC day from the store, and on PostgreSQL the id as text and the time
    as the driver gives it (an aware datetime): no Decimal, UUID or time zone conversion per
    call, and no result processor (tested)."""
    call_id: ColumnElement[Any]
    at: ColumnElement[Any]
    day: ColumnElement[Any]
    nanos: ColumnElement[Any]
    if postgres:  # every cost fits a BIGINT of nano-dollars (events.MAX_COST: SQLite's limit)
        call_id = cast(calls.c.id, Text)
        at = type_coerce(calls.c.occurred_at, DateTime(timezone=True))
        day = cast(func.timezone("UTC", calls.c.occurred_at), Date)
        nanos = cast(type_coerce(calls.c.cost_usd, Numeric) * NANOS_PER_DOLLAR, BigInteger)
    else:  # SQLite stores naive UTC text (UTCDateTime makes it aware) and nano-dollars
        call_id, at = calls.c.id, calls.c.occurred_at
        day = type_coerce(func.date(calls.c.occurred_at), Date)
        nanos = type_coerce(calls.c.cost_usd, BigInteger)
    return (
        call_id,
        at,
        day,
        calls.c.provider,
        calls.c.model,
        calls.c.user_id,
        calls.c.feature,
        *(calls.c[name] for name in TOKEN_FIELDS),
        calls.c.units,
        calls.c.batch,
        nanos,
        calls.c.price_version_id,
    )


if TOKEN_FIELDS != (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
):  # checked at import, also under python -O
    raise ImportError("_price_rows unpacks the token counts in this order")


@dataclass
class _Priced:
    """A batch priced afresh: the calls that change, and every call's sums by rollup key."""

    # (id, occurred_at, nano-dollars or None, price version or None) of each call that changes
    changes: list[tuple[Any, datetime, int | None, int | None]] = field(default_factory=list)
    # (day, user_id or "", feature or "", provider, model) -> the calls' sums before and after
    sums: dict[tuple[Any, ...], Sums] = field(default_factory=dict)


def _price_rows(
    book: PriceBook, rows: Iterable[Sequence[Any]], priced: _Priced | None = None
) -> _Priced:
    """Price each call as ``quote_call`` does, in whole nano-dollars, into ``priced`` (this loop
    runs for every call a reprice reads: it builds no Decimal and no Row mapping)."""
    priced = _Priced() if priced is None else priced
    changes, sums = priced.changes, priced.sums
    quote = book.quote_nanos
    for (
        call_id, at, day, provider, model, user_id, feature,
        input_tokens, output_tokens, cache_read, cache_write, reasoning,
        units, batch, old, old_version,
    ) in rows:  # fmt: skip
        usage = {
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cache_read_tokens": cache_read,
            "cache_write_tokens": cache_write,
            "reasoning_tokens": reasoning,
        }  # as CallEvent.usage() builds it
        if units:
            usage.update(units)
        new, version = quote(provider, model, at, usage, batch)
        if new != old or version != old_version:
            changes.append((call_id, at, new, version))
        key = (day, user_id or "", feature or "", provider, model)
        group = sums.get(key)
        if group is None:
            group = sums[key] = [0, 0, 0, 0, 0]
        group[0] += 1
        if old is None:
            group[1] += 1
        else:
            group[2] += old
        if new is None:
            group[3] += 1
        else:
            group[4] += new
    return priced


def _add_to_preview(preview: Preview, priced: _Priced) -> None:
    for (day, _user, _feature, provider, model), sums in priced.sums.items():
        preview.add_sums(provider, model, day, sums)
    preview.changed += len(priced.changes)


def _write_batch(conn: Connection, priced: _Priced) -> None:
    """Update the batch's changed calls and move their differences into every rollup."""
    if not priced.changes:
        return
    # (cost nanos, unpriced calls) after minus before; a call that did not change adds nothing
    deltas = {key: (s[4] - s[2], s[3] - s[1]) for key, s in priced.sums.items()}
    if conn.dialect.name == "postgresql":
        _update_calls_pg(conn, priced.changes)
    else:
        conn.execute(
            _UPDATE_CALL,
            [
                {"b_id": call_id, "b_at": at, "b_cost": nanos, "b_version": version,
                 "b_source": None if nanos is None else "computed"}
                for call_id, at, nanos, version in priced.changes
            ],
        )  # fmt: skip
    for table in ROLLUP_TABLES:  # in the writer's order, keys sorted: the writer's lock order
        _move_deltas(conn, table, deltas)


_UPDATE_CALL = (
    update(calls)
    .where(calls.c.id == bindparam("b_id"), calls.c.occurred_at == bindparam("b_at"))
    .values(
        cost_usd=bindparam("b_cost", type_=BigInteger),  # nano-dollars, as SQLite stores them
        price_version_id=bindparam("b_version"),
        cost_source=bindparam("b_source"),
    )
)  # by both columns of the primary key


def _nano_dollars(nanos: ColumnElement[Any]) -> ColumnElement[Any]:
    """Whole nano-dollars as NUMERIC dollars on PostgreSQL: a product, exact (a quotient would
    be rounded to PostgreSQL's chosen scale)."""
    return nanos * literal(NANO, Numeric(20, 9))


def _update_calls_statement() -> Any:
    """One UPDATE of every changed call of a batch, from three arrays bound as parameters.

    The batch's bounds of id and time let PostgreSQL read only the months and the part of the
    primary key that hold the batch, and join it to the arrays by hash (without them it
    hashed every call of the table: 0.8 s a batch at 1M calls, against 0.3 s). Ids are unique
    in ``calls`` (``call_ids`` sees to it), so the id alone finds the call."""
    u = _unnest("u", ("b_id", _TEXT_ID), ("b_nanos", BigInteger()), ("b_version", Integer()))
    return (
        update(calls)
        .where(
            calls.c.id == u.c.b_id,
            calls.c.id.between(
                bindparam("lo_id", type_=_TEXT_ID), bindparam("hi_id", type_=_TEXT_ID)
            ),
            calls.c.occurred_at.between(bindparam("lo_at"), bindparam("hi_at")),
        )
        .values(
            cost_usd=_nano_dollars(u.c.b_nanos),
            price_version_id=u.c.b_version,
            cost_source=case((u.c.b_nanos.is_(None), null()), else_=literal("computed")),
        )
    )


_UPDATE_CALLS_PG = _update_calls_statement()


def _update_calls_pg(
    conn: Connection, changes: Sequence[tuple[Any, datetime, int | None, int | None]]
) -> None:
    ids, ats, nanos, versions = zip(*changes, strict=True)
    conn.execute(
        _UPDATE_CALLS_PG,
        {
            "b_id": _numbers(ids),
            "b_nanos": _numbers(nanos),
            "b_version": _numbers(versions),
            "lo_id": ids[0],  # the batch is in id order
            "hi_id": ids[-1],
            "lo_at": min(ats),
            "hi_at": max(ats),
        },
    )


def _move_deltas(
    conn: Connection, table: Table, deltas: dict[tuple[Any, ...], tuple[int, int]]
) -> None:
    """Add the cost and unpriced-call differences to ``table``, regrouped to its keys. Its rows
    exist: the calls were added to them when they were written (and rollups are never deleted)."""
    keys = rollup_keys(table)
    key_of = itemgetter(*(ROLLUP_KEYS.index(name) for name in keys))  # two keys or more: tuples
    grouped: dict[tuple[Any, ...], list[int]] = {}
    for key, (nanos, unpriced) in deltas.items():
        if nanos or unpriced:
            into = grouped.get(narrow := key_of(key))
            if into is None:
                grouped[narrow] = [nanos, unpriced]
            else:
                into[0] += nanos
                into[1] += unpriced
    moves = [(key, value) for key, value in grouped.items() if value[0] or value[1]]
    if not moves:
        return
    if conn.dialect.name == "postgresql":  # the statement locks the rows in key order itself
        columns = zip(*(key for key, _ in moves), strict=True)
        params: dict[str, Any] = {
            f"k_{name}": _texts(values) for name, values in zip(keys, columns, strict=True)
        }
        params["d_nanos"] = _numbers([nanos for _, (nanos, _u) in moves])
        params["d_unpriced"] = _numbers([unpriced for _, (_n, unpriced) in moves])
        days = [key[0] for key, _ in moves]  # day comes first
        params["lo_day"], params["hi_day"] = min(days), max(days)
        conn.execute(_move_deltas_pg(table), params)
        return
    statement = (
        update(table)
        .where(*(table.c[name] == bindparam(f"k_{name}") for name in keys))
        .values(
            cost_usd=table.c.cost_usd + bindparam("d_cost", type_=BigInteger),  # SQLite's nanos
            unpriced_calls=table.c.unpriced_calls + bindparam("d_unpriced"),
        )
    )
    conn.execute(
        statement,
        [
            {**{f"k_{name}": value for name, value in zip(keys, key, strict=True)},
             "d_cost": nanos, "d_unpriced": unpriced}
            for key, (nanos, unpriced) in sorted(moves)
        ],
    )  # fmt: skip


@cache
def _move_deltas_pg(table: Table) -> Any:
    """One UPDATE of ``table``'s rows by the arrays of keys and differences, which first locks
    the rows in key order (``locked``, read whole before the update starts): the order the
    writer's upserts lock them in, so that the two cannot deadlock. The batch's first and last
    day bound the primary key's range to read."""
    keys = rollup_keys(table)
    d = _unnest(
        "d",
        *((f"k_{name}", Date() if name == "day" else Text()) for name in keys),
        ("d_nanos", BigInteger()),
        ("d_unpriced", BigInteger()),
    )
    deltas = select(d).cte("deltas")
    matches = [
        *(table.c[name] == deltas.c[f"k_{name}"] for name in keys),
        table.c.day.between(bindparam("lo_day"), bindparam("hi_day")),
    ]
    locked = (
        select(*(table.c[name] for name in keys))
        .join(deltas, and_(*matches))
        .order_by(*(table.c[name] for name in keys))
        .with_for_update(of=table)
        .cte("locked")
    )
    return (
        update(table)
        .where(*matches, select(func.count()).select_from(locked).scalar_subquery() >= 0)
        .values(
            cost_usd=table.c.cost_usd + _nano_dollars(deltas.c.d_nanos),
            unpriced_calls=table.c.unpriced_calls + deltas.c.d_unpriced,
        )
        .add_cte(locked)
    )


def _audit(conn: Connection, preview: Preview, who: str, note: str | None) -> int:
    if not preview.changed:
        note = "nothing to change" if note is None else f"{note} (nothing to change)"
    after = preview.audit_json(after=True) | {"changed_calls": preview.changed}
    return record_change(
        conn,
        who,
        "reprice",
        "calls",
        preview.selection.describe(),
        preview.audit_json(after=False),
        after,
        note=note,
    )


def _audit_start(
    conn: Connection, selection: Selection, who: str, note: str | None, batch_size: int
) -> None:
    """The row that says a run of several batches began, committed with its first batch: a run
    that never finishes (an error, a killed process) still left a record of what it changed."""
    record_change(
        conn,
        who,
        "reprice started",
        "calls",
        selection.describe(),
        None,
        {"batch_size": batch_size},
        note=note,
    )


def _audit_failure(
    engine: Engine,
    selection: Selection,
    writes: _Writes,
    error: Exception,
    who: str,
    note: str | None,
) -> None:
    """After a failed run whose first batches are committed: a row saying how far it got, in a
    transaction of its own. If the store refuses that too, the run's own error is what the
    caller sees (the "reprice started" row is then the record)."""
    reason = f"{type(error).__name__}: {error}"[:500]
    after = {
        "batches_committed": writes.batches_committed,
        "changed_calls": writes.calls_changed,
        "error": reason,
    }
    told = "stopped part way; run it again to finish (it changes only what is left)"
    try:
        with engine.begin() as conn:
            record_change(
                conn,
                who,
                "reprice failed",
                "calls",
                selection.describe(),
                None,
                after,
                note=told if note is None else f"{note} ({told})",
            )
    except Exception:  # the store is the likely cause of the error itself
        log.warning("reprice: could not write the audit row of the failed run", exc_info=True)
