"""The audit log: one row per change, written in the caller's transaction, so a change and its
record are committed together or not at all."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, insert

from tracking.schema import audit_log


def record_change(
    conn: Connection,
    who: str,
    action: str,
    table: str,
    key: str,
    before: Any,
    after: Any,
    note: str | None = None,
) -> int:
    """Log that ``who`` did ``action`` to the rows ``key`` of ``table``; returns the row's id.

    ``before`` and ``after`` must be JSON values already: money as decimal strings, so that the
    log says exactly what the store held.
    """
    return conn.execute(
        insert(audit_log)
        .values(
            at=datetime.now(UTC),
            who=who,
            action=action,
            table_name=table,
            key=key,
            before=before,
            after=after,
            note=note,
        )
        .returning(audit_log.c.id)
    ).scalar_one()
