"""Monthly partitions of ``calls`` on PostgreSQL, and the retention that drops old months.

PostgreSQL cannot take bind parameters in DDL, so the statements are compiled by SQLAlchemy from
typed values only: the partition name is made of two integers and the bounds are ``datetime``
objects rendered as literals by the dialect. No text a caller passed ever reaches them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, DateTime, delete, literal, select, text
from sqlalchemy.exc import ProgrammingError

from tracking.schema import call_ids, calls

Month = tuple[int, int]


def month_of(moment: datetime) -> Month:
    moment = moment.astimezone(UTC) if moment.tzinfo else moment
    return moment.year, moment.month


def month_start(month: Month) -> datetime:
    return datetime(month[0], month[1], 1, tzinfo=UTC)


def next_month(month: Month) -> Month:
    year, mon = month
    return (year + 1, 1) if mon == 12 else (year, mon + 1)


def previous_month(month: Month) -> Month:
    year, mon = month
    return (year - 1, 12) if mon == 1 else (year, mon - 1)


def partition_name(month: Month) -> str:
    return f"calls_y{month[0]:04d}m{month[1]:02d}"


def _literal(conn: Connection, moment: datetime) -> str:
    return str(
        literal(moment, DateTime(timezone=True)).compile(
            dialect=conn.dialect, compile_kwargs={"literal_binds": True}
        )
    )


def existing_months(conn: Connection) -> set[Month]:
    """The months that have a partition (PostgreSQL only)."""
    rows = conn.execute(
        text(
            "SELECT c.relname FROM pg_inherits i"
            " JOIN pg_class c ON c.oid = i.inhrelid"
            " JOIN pg_class p ON p.oid = i.inhparent"
            " WHERE p.relname = :parent"
        ),
        {"parent": calls.name},
    ).scalars()
    months = set()
    for name in rows:
        if len(name) == len("calls_y0000m00") and name.startswith("calls_y"):
            months.add((int(name[7:11]), int(name[12:14])))
    return months


def ensure_months(conn: Connection, months: Iterable[Month]) -> None:
    """Create the partitions these months need; safe when another process races us."""
    if conn.dialect.name != "postgresql":
        return
    preparer = conn.dialect.identifier_preparer
    for month in sorted(set(months)):
        name = preparer.quote(partition_name(month))
        lower = _literal(conn, month_start(month))
        upper = _literal(conn, month_start(next_month(month)))
        ddl = (
            f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF {preparer.quote(calls.name)}"
            f" FOR VALUES FROM ({lower}) TO ({upper})"
        )
        nested = conn.begin_nested()
        try:
            conn.exec_driver_sql(ddl)
            nested.commit()
        except ProgrammingError:  # created concurrently by another writer: fine
            nested.rollback()


@dataclass
class RetentionResult:
    months: list[Month]
    archived: bool
    rows_deleted: int


def apply_retention(
    conn: Connection, keep_months: int, now: datetime | None = None, archive: bool = False
) -> RetentionResult:
    """Remove calls older than the last ``keep_months`` months (the rollups keep their totals).

    On PostgreSQL whole partitions are dropped, or detached into standalone tables with
    ``archive=True``; on SQLite the rows are deleted. Ids of removed calls leave ``call_ids`` too.
    """
    if keep_months < 1:
        raise ValueError("keep_months must be at least 1")
    if archive and conn.dialect.name != "postgresql":
        raise ValueError("archiving detaches partitions, which needs PostgreSQL; drop instead")
    now = now or datetime.now(UTC)
    cutoff_month = month_of(now)
    for _ in range(keep_months - 1):
        cutoff_month = previous_month(cutoff_month)
    cutoff = month_start(cutoff_month)
    removed: list[Month] = []
    deleted = 0
    if conn.dialect.name == "postgresql":
        preparer = conn.dialect.identifier_preparer
        for month in sorted(existing_months(conn)):
            if month_start(month) >= cutoff:
                continue
            name = preparer.quote(partition_name(month))
            parent = preparer.quote(calls.name)
            if archive:
                conn.exec_driver_sql(f"ALTER TABLE {parent} DETACH PARTITION {name}")
            else:
                conn.exec_driver_sql(f"DROP TABLE {name}")
            removed.append(month)
    else:
        old = select(calls.c.occurred_at).where(calls.c.occurred_at < cutoff)
        months = {month_of(m) for m in conn.execute(old).scalars()}
        removed = sorted(months)
        deleted = conn.execute(delete(calls).where(calls.c.occurred_at < cutoff)).rowcount
    conn.execute(delete(call_ids).where(call_ids.c.occurred_at < cutoff))
    return RetentionResult(months=removed, archived=archive, rows_deleted=deleted)
