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
from sqlalchemy import (
    ARRAY,
    BigInteger,
    Connection,
    Date,
    Integer,
    Table,
    Text,
    and_,
    bindparam,
    cast,
    exists,
    func,
    literal,
    not_,
    or_,
    select,
    text,
)

from dashboard.accounts import Accounts, load_accounts, load_terms
from dashboard.economics import (
    CustomerMargin,
    attribute_costs,
    customer_margins,
    plan_margins,
)
from dashboard.economics.accounts import Term
from dashboard.economics.attribution import CostAttribution, Customers, customers_of
from dashboard.economics.calculators import (
    EPOCH_MONDAY,
    MASK_WEEKS,
    WeekCost,
    cost_per_active_user_by_week,
    week_number,
    weeks_from_masks,
)
from dashboard.economics.margins import customer_books
from dashboard.economics.plans import PlanMargin
from dashboard.gc_pause import collections_paused
from tracking.pg_arrays import numbers_array, texts_array, unnest_arrays
from tracking.schema import (
    customer_users,
    customers,
    daily_feature_model_rollups,
    daily_rollups,
    daily_user_rollups,
)
from tracking.sqltypes import NANOS_PER_DOLLAR, to_nanos


def _nanos(value: Any) -> int:
    if value is None:
        return 0
    return value if isinstance(value, int) else to_nanos(Decimal(value))


def _pg_nanos(cost: Any) -> Any:
    """A PostgreSQL sum of NUMERIC(20, 9) dollars as whole nano-dollars (exact: 9 decimals),
    so that each summed row arrives as an int rather than a Decimal to convert."""
    return cast(func.sum(cost) * NANOS_PER_DOLLAR, BigInteger)


@dataclass(frozen=True)
class UserTotals:
    """What one scan of the per-user rollup over a period gives (PostgreSQL): per user id, the
    first day with calls, the cost in nano-dollars, the unpriced calls, and the weeks with
    calls as a bit mask (bit k: week ``first_week + k``; ``calculators.week_number``), or no
    masks for a period longer than ``MASK_WEEKS`` weeks."""

    first_week: int
    rows: list[tuple[str | None, date, int, int]]
    masks: list[int] | None


def user_totals(conn: Connection, start: date, end: date) -> UserTotals:
    """Every user's totals of ``start``..``end`` from the per-user rollup, in one statement."""
    r = daily_user_rollups.c
    first_week = week_number(start)
    with_masks = week_number(end) - first_week < MASK_WEEKS
    columns = [r.user_id, func.min(r.day), _pg_nanos(r.cost_usd), func.sum(r.unpriced_calls)]
    if with_masks:
        columns.append(func.bit_or(literal(1, BigInteger).op("<<")(_week_of(r.day) - first_week)))
    query = select(*columns).where(r.day >= start, r.day <= end).group_by(r.user_id)
    with conn.begin_nested() as planner:
        # read the covering (user_id, day) index in order and sum each user as it streams by:
        # 110 ms at 25,000 users and 335,000 rollup rows, where the hash of every user's
        # NUMERIC sums that the planner prefers took 200-400 ms (bench/README.md, app pages).
        # The settings end with this savepoint.
        for setting in _STREAM_BY_USER:
            conn.execute(setting)
        found = conn.execute(query).all()
        planner.rollback()
    rows, masks = [], []
    for user, day, cost, unpriced, *mask in found:
        rows.append((user or None, day, _nanos(cost), int(unpriced or 0)))
        if with_masks and user:  # calls without a user id make no active user
            masks.append(mask[0])
    return UserTotals(first_week, rows, masks if with_masks else None)


_STREAM_BY_USER = [
    text("SET LOCAL enable_hashagg = off"),
    text("SET LOCAL enable_seqscan = off"),
    text("SET LOCAL max_parallel_workers_per_gather = 0"),
]


def _week_of(day: Any) -> Any:
    """``calculators.week_number`` in PostgreSQL: whole days since the epoch Monday // 7."""
    days = day.op("-", return_type=Integer())(literal(EPOCH_MONDAY, Date()))
    return days // 7


def term_cost_rows(
    conn: Connection,
    start: date,
    end: date,
    terms: Iterable[Term] | None = None,
    totals: UserTotals | None = None,
    customers: Customers | None = None,
) -> list[tuple[Any, date, int, int]]:
    """Per-user AI cost of the days ``start``..``end``, one row per user and the term that owns
    those days (the customer's term active that day, the latest started where two overlap),
    plus one row per user for the days no term owns: (user id, a day of the group, cost in
    nano-dollars, unpriced calls), as ``attribute_costs`` takes them. A few rows per user,
    whatever the number of days. ``terms``: every customer's terms (read when not given);
    ``totals``: ``user_totals`` of the period, when the caller has them (PostgreSQL);
    ``customers``: ``customers_of`` the terms and period, likewise.

    On PostgreSQL the days each term owns are worked out here, as ``attribute_costs`` does:
    a user whose customer's days are all owned by one term (most of them) is one row of
    ``user_totals``; only the users of the other customers are summed by owning span, their
    rollup rows read by user id, the spans bound as arrays. At 25,000 customers this took the
    SQL from about 1 s (ownership decided per rollup row, as SQLite still does) to about 0.1 s
    (bench/README.md, app pages)."""
    if conn.dialect.name != "postgresql":
        return _rows(conn.execute(_term_cost_query(start, end)))
    if customers is None:
        customers = customers_of(load_terms(conn) if terms is None else terms, start, end)
    split: list[str] = []
    ids: list[int] = []
    owners: list[str] = []
    firsts: list[date] = []
    lasts: list[date] = []
    for customer_id, customer in customers.items():
        spans = customer.spans
        if len(spans) == 1:  # one term or none owns every day: the user's totals say it all
            continue
        split.append(customer_id)
        for span in spans:
            if span.term is not None:
                ids.append(len(ids))
                owners.append(customer_id)
                firsts.append(span.first)
                lasts.append(span.last)
    totals = user_totals(conn, start, end) if totals is None else totals
    if not split:
        return totals.rows
    by_span = _split_user_rows(conn, start, end, split, (ids, owners, firsts, lasts))
    done = {row[0] for row in by_span}
    return [row for row in totals.rows if row[0] not in done] + by_span


def _split_user_rows(
    conn: Connection,
    start: date,
    end: date,
    customer_ids: list[str],
    spans: tuple[list[int], list[str], list[date], list[date]],
) -> list[tuple[Any, date, int, int]]:
    """The users of ``customer_ids`` summed by the span of days that owns them (or none)."""
    r = daily_user_rollups.c
    cu = customer_users.c
    s = unnest_arrays(
        "s", ("s_id", Integer()), ("s_customer", Text()), ("s_first", Date()), ("s_last", Date())
    )
    chosen = cast(bindparam("split", type_=Text), ARRAY(Text()))
    query = (
        select(r.user_id, func.min(r.day), _pg_nanos(r.cost_usd), func.sum(r.unpriced_calls))
        .select_from(daily_user_rollups)
        .join(customer_users, cu.user_id == r.user_id)
        .outerjoin(
            s, and_(s.c.s_customer == cu.customer_id, r.day.between(s.c.s_first, s.c.s_last))
        )
        .where(cu.customer_id == func.any(chosen), r.day >= start, r.day <= end)
        .group_by(r.user_id, s.c.s_id)
    )
    ids, owners, firsts, lasts = spans
    params = {
        "split": texts_array(customer_ids),
        "s_id": numbers_array(ids),
        "s_customer": texts_array(owners),
        "s_first": texts_array(firsts),
        "s_last": texts_array(lasts),
    }
    return _rows(conn.execute(query, params))


def _rows(result: Iterable[Any]) -> list[tuple[Any, date, int, int]]:
    return [
        (user or None, day, _nanos(cost), int(unpriced or 0))
        for user, day, cost, unpriced in result
    ]


def _term_cost_query(start: date, end: date) -> Any:
    """``term_cost_rows`` in SQL alone: the owning term decided per rollup row."""
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
    return (
        select(r.user_id, func.min(r.day), func.sum(r.cost_usd), func.sum(r.unpriced_calls))
        .select_from(daily_user_rollups)
        .outerjoin(customer_users, cu.user_id == r.user_id)
        .outerjoin(customers, owns)
        .where(r.day >= start, r.day <= end)
        .group_by(r.user_id, c.customer_id, c.start)
    )


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


def week_costs(
    conn: Connection, start: date, end: date, totals: UserTotals | None = None
) -> list[WeekCost]:
    """AI cost per active user by ISO week over ``start``..``end``
    (``cost_per_active_user_by_week``). On PostgreSQL, for periods of up to ``MASK_WEEKS``
    weeks, from each user's week mask (``user_totals``, which the margins read anyway) and the
    week sums of the small feature and model rollup: no row per user and week leaves the
    store (at 25,000 users: 104,000 rows and about 650 ms before)."""
    if conn.dialect.name == "postgresql":
        totals = user_totals(conn, start, end) if totals is None else totals
        if totals.masks is not None:
            return weeks_from_masks(
                totals.first_week,
                totals.masks,
                _week_sums(conn, daily_feature_model_rollups, start, end),
                _week_sums(conn, daily_user_rollups, start, end, unattributed=True),
            )
    return cost_per_active_user_by_week(user_week_rows(conn, start, end))


def _week_sums(
    conn: Connection, table: Table, start: date, end: date, unattributed: bool = False
) -> dict[int, tuple[int, int]]:
    """week number -> (nano-dollars, unpriced calls) of ``table``'s rows (PostgreSQL), or of
    its rows without a user id only."""
    t = table.c
    week = _week_of(t.day)
    where = [t.day >= start, t.day <= end]
    if unattributed:
        where.append(t.user_id == "")
    query = select(week, _pg_nanos(t.cost_usd), func.sum(t.unpriced_calls))
    return {
        int(w): (int(nanos or 0), int(unpriced or 0))
        for w, nanos, unpriced in conn.execute(query.where(*where).group_by(week))
    }


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
    weeks: list[WeekCost]  # AI cost per active user by ISO week


def margins_report(
    conn: Connection,
    start: date,
    end: date,
    fee_pct: Decimal = Decimal(0),
    infra_per_month: Decimal = Decimal(0),
    target_margin_pct: Decimal | None = None,
) -> MarginsReport:
    """Every customer's and plan's margin over ``start``..``end`` (days included)."""
    with collections_paused():
        return _margins_report(conn, start, end, fee_pct, infra_per_month, target_margin_pct)


def _margins_report(
    conn: Connection,
    start: date,
    end: date,
    fee_pct: Decimal,
    infra_per_month: Decimal,
    target_margin_pct: Decimal | None,
) -> MarginsReport:
    accounts = load_accounts(conn)
    users: dict[str, list[str]] = {}
    for user, customer in accounts.users.items():
        users.setdefault(customer, []).append(user)
    totals = user_totals(conn, start, end) if conn.dialect.name == "postgresql" else None
    customers = customers_of(accounts.terms, start, end)  # once, for the costs, shares, books
    rows = term_cost_rows(conn, start, end, accounts.terms, totals, customers)
    weeks = week_costs(conn, start, end, totals)
    attribution = attribute_costs(rows, users, accounts.terms, start, end, customers)
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
    books = customer_books(*args, customers=customers)  # once, for both
    per_customer = customer_margins(*args, books=books)
    per_plan = plan_margins(*args, target_margin_pct, books=books)
    return MarginsReport(start, end, accounts, attribution, per_customer, per_plan, weeks)


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
