"""What the margins need from the store, read with SQL that stays small at scale: each user's
AI cost per subscription term from the per-user rollup (not raw calls), the costliest features
and models of a few customers, and one customer's detail. The calculations are
``dashboard.economics``; ``margins_report`` joins the two for the page and the CLI.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Date, and_, cast, exists, func, not_, or_, select

from dashboard.accounts import Accounts, load_accounts
from dashboard.economics import (
    CustomerMargin,
    attribute_costs,
    customer_margins,
    plan_margins,
)
from dashboard.economics.attribution import CostAttribution
from dashboard.economics.margins import customer_books
from dashboard.economics.plans import PlanMargin
from tracking.schema import customer_users, customers, daily_rollups, daily_user_rollups
from tracking.sqltypes import to_nanos


def _nanos(value: Any) -> int:
    return 0 if value is None else to_nanos(Decimal(value))


def term_cost_rows(conn: Connection, start: date, end: date) -> list[tuple[Any, date, int, int]]:
    """Per-user AI cost of the days ``start``..``end``, one row per user and the term that owns
    those days (the customer's term active that day, the latest started where two overlap),
    plus one row per user for the days no term owns: (user id, a day of the group, cost in
    nano-dollars, unpriced calls), as ``attribute_costs`` takes them. A few rows per user,
    whatever the number of days."""
    r = daily_user_rollups.c
    cu = customer_users.c
    c = customers.c
    later = customers.alias("later")
    owns = and_(
        c.customer_id == cu.customer_id,
        c.start <= r.day,
        or_(c.end.is_(None), c.end >= r.day),
        not_(
            exists().where(
                later.c.customer_id == c.customer_id,
                later.c.start > c.start,
                later.c.start <= r.day,
                or_(later.c.end.is_(None), later.c.end >= r.day),
            )
        ),
    )
    query = (
        select(r.user_id, func.min(r.day), func.sum(r.cost_usd), func.sum(r.unpriced_calls))
        .select_from(daily_user_rollups)
        .outerjoin(customer_users, cu.user_id == r.user_id)
        .outerjoin(customers, owns)
        .where(r.day >= start, r.day <= end)
        .group_by(r.user_id, c.customer_id, c.start)
    )
    return [
        (user or None, day, _nanos(cost), int(unpriced or 0))
        for user, day, cost, unpriced in conn.execute(query)
    ]


def _week_start(conn: Connection, day: Any) -> Any:
    """The Monday of a day's ISO week, in the store's own SQL."""
    if conn.dialect.name == "postgresql":
        return cast(func.date_trunc("week", day), Date)
    return func.date(day, "-6 days", "weekday 1")


def user_week_rows(conn: Connection, start: date, end: date) -> list[tuple[Any, date, int, int]]:
    """Per user and ISO week of the period: (user id, the week's Monday, cost in nano-dollars,
    unpriced calls), as ``cost_per_active_user_by_week`` takes them."""
    r = daily_user_rollups.c
    week = _week_start(conn, r.day)
    query = (
        select(r.user_id, week, func.sum(r.cost_usd), func.sum(r.unpriced_calls))
        .where(r.day >= start, r.day <= end)
        .group_by(r.user_id, week)
    )
    return [
        (user or None, monday if isinstance(monday, date) else date.fromisoformat(monday),
         _nanos(cost), int(unpriced or 0))
        for user, monday, cost, unpriced in conn.execute(query)
    ]  # fmt: skip


@dataclass(frozen=True)
class MarginsReport:
    """The margins of a period: per customer and per plan, with what the calls cost that no
    customer's term covers."""

    start: date
    end: date
    accounts: Accounts
    attribution: CostAttribution
    customers: list[CustomerMargin]
    plans: list[PlanMargin]


def margins_report(
    conn: Connection,
    start: date,
    end: date,
    fee_pct: Decimal = Decimal(0),
    infra_per_month: Decimal = Decimal(0),
    target_margin_pct: Decimal | None = None,
) -> MarginsReport:
    """Every customer's and plan's margin over ``start``..``end`` (days included)."""
    accounts = load_accounts(conn)
    users: dict[str, list[str]] = {}
    for user, customer in accounts.users.items():
        users.setdefault(customer, []).append(user)
    rows = term_cost_rows(conn, start, end)
    attribution = attribute_costs(rows, users, accounts.terms, start, end)
    lines = list(accounts.revenue.values())
    args = (
        accounts.terms,
        accounts.plans,
        attribution,
        start,
        end,
        lines,
        fee_pct,
        infra_per_month,
    )
    books = customer_books(*args)  # once, for both
    per_customer = customer_margins(*args, books=books)
    per_plan = plan_margins(*args, target_margin_pct, books=books)
    return MarginsReport(start, end, accounts, attribution, per_customer, per_plan)


def top_spend(
    conn: Connection, customer_ids: Iterable[str], start: date, end: date, by: str, n: int = 3
) -> dict[str, list[tuple[str, Decimal]]]:
    """The ``n`` costliest features (``by="feature"``) or models of each customer given, over
    the period, from the full rollup: customer id -> [(name, cost)], costliest first."""
    chosen = list(customer_ids)
    if not chosen:
        return {}
    r = daily_rollups.c
    name = r.feature if by == "feature" else r.provider + "/" + r.model
    cost = func.sum(r.cost_usd)
    query = (
        select(customer_users.c.customer_id, name, cost)
        .join(customer_users, customer_users.c.user_id == r.user_id)
        .where(customer_users.c.customer_id.in_(chosen), r.day >= start, r.day <= end)
        .group_by(customer_users.c.customer_id, name)
    )
    found: dict[str, list[tuple[str, Decimal]]] = {}
    for customer, label, total in conn.execute(query):
        found.setdefault(customer, []).append((label or "(none)", Decimal(total or 0)))
    return {k: sorted(v, key=lambda x: -x[1])[:n] for k, v in found.items()}


def customer_detail(
    conn: Connection, customer_id: str, start: date, end: date
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One customer's AI cost over the period by day and by feature, from the full rollup
    (each cost as exact decimal text beside a float to draw)."""
    r = daily_rollups.c
    mine = select(customer_users.c.user_id).where(customer_users.c.customer_id == customer_id)
    where = (r.user_id.in_(mine), r.day >= start, r.day <= end)
    frames = []
    for key in (r.day, r.feature):
        query = (
            select(key, func.sum(r.calls), func.sum(r.cost_usd), func.sum(r.unpriced_calls))
            .where(*where)
            .group_by(key)
            .order_by(key)
        )
        rows = [(k, int(n), Decimal(c or 0), int(u or 0)) for k, n, c, u in conn.execute(query)]
        frame = pd.DataFrame(rows, columns=[key.name, "calls", "cost", "unpriced"])
        frame["dollars"] = frame["cost"].astype(float)
        frames.append(frame)
    return frames[0], frames[1]
