"""One writer at a time of a kind of row (price versions, budgets, accounts, scenarios): the lock
each of their writers takes first, so that what it checks stays true until it commits."""

from __future__ import annotations

from sqlalchemy import Connection, Table, false, func, select, update


def take_write_lock(conn: Connection, key: int, table: Table, column: str) -> None:
    """Make this transaction the only writer of ``table``'s kind of row until it ends.
    PostgreSQL: the advisory transaction lock ``key`` (taken again by the same transaction, it
    returns at once); SQLite: its write lock, taken by a write of ``column`` that changes
    nothing, before anything is read."""
    if conn.dialect.name == "postgresql":
        conn.execute(select(func.pg_advisory_xact_lock(key)))
    else:
        conn.execute(update(table).where(false()).values({column: table.c[column]}))
