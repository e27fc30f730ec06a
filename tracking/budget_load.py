"""Read the budgets, their spend this period and the user -> customer map from the store into
a :class:`~tracking.budget_view.BudgetView`: the background refresher's one query step."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Connection, select

from tracking.budget_periods import period_at
from tracking.budget_store import limit_in, list_budgets, spent_in
from tracking.budget_view import BudgetView, Entry
from tracking.schema import customer_users


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
