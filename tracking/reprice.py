"""Repricing stored calls with the price book as it is now: previewed, batched, idempotent, audited.

A call changes when the version in force at its time gives it another cost or another version.
Each batch is one transaction that re-reads its calls under a lock (``FOR UPDATE`` on
PostgreSQL; SQLite's write lock, taken first), updates them and moves the differences of cost
and of unpriced calls into every rollup table: a concurrent writer, or a second reprice, then
cannot make a rollup drift from the sums over ``calls``, and a second run finds nothing to do.
Provider-reported costs are never selected.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine, Row, Table, bindparam, false, select, update

from tracking.audit import record_change
from tracking.pricing import PriceBook, Quote, load_price_book
from tracking.reprice_preview import Preview, Selection
from tracking.schema import (
    ROLLUP_KEYS,
    ROLLUP_TABLES,
    TOKEN_FIELDS,
    calls,
    rollup_keys,
)
from tracking.sqltypes import from_nanos, to_nanos

_READ = (
    calls.c.id,
    calls.c.occurred_at,
    calls.c.provider,
    calls.c.model,
    calls.c.user_id,
    calls.c.feature,
    *(calls.c[name] for name in TOKEN_FIELDS),
    calls.c.units,
    calls.c.batch,
    calls.c.cost_usd,
    calls.c.price_version_id,
)

# (batch number, calls read so far, calls changed so far)
Progress = Callable[[int, int, int], None]


def quote_call(book: PriceBook, row: Row[Any]) -> Quote:
    """The call priced afresh, with the usage built as ``CallEvent.usage()`` builds it."""
    usage: dict[str, Any] = {name: row._mapping[name] for name in TOKEN_FIELDS}
    if row.units:
        usage.update(row.units)
    return book.quote(row.provider, row.model, row.occurred_at, usage, row.batch)


def _changes(row: Row[Any], quote: Quote) -> bool:
    return quote.cost != row.cost_usd or quote.version_id != row.price_version_id


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
    query = select(*_READ).where(*selection.conditions())
    for row in conn.execution_options(yield_per=10_000).execute(query):
        quote = quote_call(book, row)
        preview.add(row.provider, row.model, row.occurred_at.date(), row.cost_usd, quote.cost)
        preview.changed += _changes(row, quote)
    return preview


@dataclass
class RepriceResult:
    """What a run did: the totals of the calls it read (before and after), batches, audit row."""

    preview: Preview
    batches: int
    audit_id: int


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
    audit row goes in with the last batch (or alone, "nothing to change")."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    selection = Selection(provider, tuple(models), start, end, unpriced_only)
    with engine.connect() as conn:
        book = load_price_book(conn)
    preview = Preview(selection)
    after_id: Any = None
    batches = 0
    while True:
        with engine.begin() as conn:
            rows = _lock_batch(conn, selection, after_id, batch_size + 1)
            more = len(rows) > batch_size
            rows = rows[:batch_size]
            if rows:
                batches += 1
                _reprice_batch(conn, book, rows, preview)
                after_id = rows[-1].id
                if progress is not None:
                    progress(batches, preview.selected, preview.changed)
            if not more:
                audit_id = _audit(conn, preview, who, note)
                return RepriceResult(preview, batches, audit_id)


def _lock_batch(conn: Connection, selection: Selection, after_id: Any, limit: int) -> list[Any]:
    """The next calls of the selection by id, read inside the batch's transaction under a lock,
    so their costs cannot change between this read and the batch's commit."""
    if conn.dialect.name == "sqlite":
        # a write that matches nothing takes SQLite's write lock now: the reads below then see
        # the latest commit, and no other writer commits before this transaction does
        conn.execute(update(calls).where(false()).values(cost_source=calls.c.cost_source))
    query = select(*_READ).where(*selection.conditions())
    if after_id is not None:
        query = query.where(calls.c.id > after_id)
    query = query.order_by(calls.c.id).limit(limit)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    return list(conn.execute(query))


_UPDATE_CALL = (
    update(calls)
    .where(calls.c.id == bindparam("b_id"), calls.c.occurred_at == bindparam("b_at"))
    .values(
        cost_usd=bindparam("b_cost", type_=calls.c.cost_usd.type),
        price_version_id=bindparam("b_version"),
        cost_source=bindparam("b_source"),
    )
)  # by both columns of the primary key: on PostgreSQL that finds the call's month at once


def _reprice_batch(
    conn: Connection, book: PriceBook, rows: Iterable[Any], preview: Preview
) -> None:
    """Update the batch's changed calls and move their differences into every rollup."""
    updates: list[dict[str, Any]] = []
    deltas: dict[tuple[Any, ...], list[int]] = {}  # finest rollup key -> [cost nanos, unpriced]
    for row in rows:
        quote = quote_call(book, row)
        day = row.occurred_at.date()
        preview.add(row.provider, row.model, day, row.cost_usd, quote.cost)
        if not _changes(row, quote):
            continue
        preview.changed += 1
        updates.append(
            {
                "b_id": row.id,
                "b_at": row.occurred_at,
                "b_cost": quote.cost,
                "b_version": quote.version_id,
                "b_source": "computed" if quote.cost is not None else None,
            }
        )
        key = (day, row.user_id or "", row.feature or "", row.provider, row.model)
        delta = deltas.setdefault(key, [0, 0])
        delta[0] += _nanos(quote.cost) - _nanos(row.cost_usd)
        delta[1] += (quote.cost is None) - (row.cost_usd is None)
    if not updates:
        return
    conn.execute(_UPDATE_CALL, updates)
    for table in ROLLUP_TABLES:  # in the writer's order, keys sorted: the writer's lock order
        _move_deltas(conn, table, deltas)


def _nanos(cost: Decimal | None) -> int:
    return 0 if cost is None else to_nanos(cost)


def _move_deltas(conn: Connection, table: Table, deltas: dict[tuple[Any, ...], list[int]]) -> None:
    """Add the cost and unpriced-call differences to ``table``, regrouped to its keys. Its rows
    exist: the calls were added to them when they were written (and rollups are never deleted)."""
    keys = rollup_keys(table)
    positions = [ROLLUP_KEYS.index(name) for name in keys]
    grouped: dict[tuple[Any, ...], list[int]] = {}
    for key, (nanos, unpriced) in deltas.items():
        into = grouped.setdefault(tuple(key[i] for i in positions), [0, 0])
        into[0] += nanos
        into[1] += unpriced
    params = [
        {**{f"k_{name}": value for name, value in zip(keys, key, strict=True)},
         "d_cost": from_nanos(nanos), "d_unpriced": unpriced}
        for key, (nanos, unpriced) in sorted(grouped.items())
        if nanos or unpriced
    ]  # fmt: skip
    if not params:
        return
    statement = (
        update(table)
        .where(*(table.c[name] == bindparam(f"k_{name}") for name in keys))
        .values(
            cost_usd=table.c.cost_usd + bindparam("d_cost", type_=table.c.cost_usd.type),
            unpriced_calls=table.c.unpriced_calls + bindparam("d_unpriced"),
        )
    )
    conn.execute(statement, params)


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
