"""Read the budgets, their spend this period and the user -> customer map from the store into
a :class:`~tracking.budget_view.BudgetView`, and which of this process's calls the store holds:
the background refresher's query steps, meant to run in one snapshot (:func:`begin_snapshot`)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import Connection, func, select

from tracking.budget_periods import period_at
from tracking.budget_store import limit_in, list_budgets, spent_in
from tracking.budget_view import BudgetView, Entry
from tracking.schema import budgets, call_ids, customer_users

ID_CHUNK = 500  # ids looked up per statement


def load_view(conn: Connection, now: datetime | None = None) -> BudgetView:
    """Every budget in its period holding ``now``, with the store's spend and limit for it
    (rollover included), and who belongs to which customer (read only if a budget needs it)."""
    moment = now or datetime.now(UTC)
    entries = []
    for budget in list_budgets(conn):
        period = period_at(budget.period, budget.timezone, moment)
        spend = spent_in(conn, budget, period)
        entries.append(Entry(budget, period, limit_in(conn, budget, period), spend.amount))
    customers: dict[str, str] = {}
    if any(e.budget.customer_id is not None for e in entries):
        rows = conn.execute(select(customer_users.c.user_id, customer_users.c.customer_id))
        customers = {user: customer for user, customer in rows}
    return BudgetView(entries, customers)


def begin_snapshot(conn: Connection) -> None:
    """Make the connection's next reads one snapshot, and take it now (by reading a table):
    REPEATABLE READ on PostgreSQL; on SQLite a read transaction (WAL keeps it consistent),
    which its Python driver would not begin for a SELECT."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN")
    else:
        conn.execution_options(isolation_level="REPEATABLE READ")
    conn.execute(select(func.count()).select_from(budgets)).scalar_one()


def stored_ids(conn: Connection, ids: Sequence[uuid.UUID]) -> list[uuid.UUID]:
    """Which of ``ids`` the store holds (``call_ids``: one row per stored call)."""
    found: list[uuid.UUID] = []
    for start in range(0, len(ids), ID_CHUNK):
        chunk = ids[start : start + ID_CHUNK]
        found += conn.execute(select(call_ids.c.id).where(call_ids.c.id.in_(chunk))).scalars()
    return found
