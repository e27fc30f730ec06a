"""What the what-if simulator reads from the store: the baseline (the last days' usage by
feature, model and plan from the full rollup, each day's cost from the feature/model rollup,
each plan's monthly revenue from its active customers' terms) and the budgets it can project.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction

from sqlalchemy import Connection, and_, exists, func, not_, or_, select

from dashboard.accounts import load_accounts
from dashboard.economics.accounts import Term
from dashboard.economics.money import _nanos
from dashboard.economics.revenue import term_monthly_charge
from dashboard.economics.whatif import Baseline, BaselineLine, BudgetLimit, monthly_limit
from tracking.budget_store import list_budgets
from tracking.schema import (
    TOKEN_FIELDS,
    customer_users,
    customers,
    daily_feature_model_rollups,
    daily_rollups,
    price_versions,
)
from tracking.sqltypes import from_nanos, to_nanos


def _plan_on(day: date):  # type: ignore[no-untyped-def]
    """Join condition: the customer's term active on ``day`` (the latest started where two
    overlap), as margin_data owns a day."""
    c, cu = customers.c, customer_users.c
    later = customers.alias("later")
    return and_(
        c.customer_id == cu.customer_id,
        c.start <= day,
        or_(c.end.is_(None), c.end >= day),
        not_(
            exists().where(
                later.c.customer_id == c.customer_id,
                later.c.start > c.start,
                later.c.start <= day,
                or_(later.c.end.is_(None), later.c.end >= day),
            )
        ),
    )


def baseline_lines(conn: Connection, start: date, end: date) -> list[BaselineLine]:
    """The usage of ``start``..``end`` by feature, model and the plan each user is on at ``end``
    (None: no customer or no term then)."""
    r = daily_rollups.c
    sums = [func.sum(r[name]) for name in ("calls", *TOKEN_FIELDS, "cost_usd", "unpriced_calls")]
    query = (
        select(r.feature, r.provider, r.model, customers.c.plan, *sums)
        .select_from(daily_rollups)
        .outerjoin(customer_users, customer_users.c.user_id == r.user_id)
        .outerjoin(customers, _plan_on(end))
        .where(r.day >= start, r.day <= end)
        .group_by(r.feature, r.provider, r.model, customers.c.plan)
        .order_by(r.feature, r.provider, r.model, customers.c.plan)
    )
    lines = []
    for feature, provider, model, plan, *totals in conn.execute(query):
        counts = dict(zip(("calls", *TOKEN_FIELDS), (int(v or 0) for v in totals), strict=False))
        lines.append(
            BaselineLine(
                feature=feature or "",
                provider=provider,
                model=model,
                plan=plan,
                cost_nanos=to_nanos(Decimal(totals[-2] or 0)),
                unpriced_calls=int(totals[-1] or 0),
                **counts,
            )
        )
    return lines


def daily_costs(conn: Connection, start: date, end: date) -> list[int]:
    """Each day's cost of ``start``..``end`` in nano-dollars, days without calls 0."""
    r = daily_feature_model_rollups.c
    query = select(r.day, func.sum(r.cost_usd)).where(r.day >= start, r.day <= end)
    found = {
        day if isinstance(day, date) else date.fromisoformat(day): to_nanos(Decimal(cost or 0))
        for day, cost in conn.execute(query.group_by(r.day))
    }
    return [found.get(start + timedelta(days=i), 0) for i in range((end - start).days + 1)]


def plan_revenue(conn: Connection, day: date) -> dict[str, Decimal]:
    """What each plan's customers pay a month on ``day``: the monthly charge of every term
    active that day (a customer's latest started), by plan; plans without customers at $0."""
    accounts = load_accounts(conn)
    active: dict[str, Term] = {}
    for term in accounts.terms:
        if not (term.start <= day and (term.end is None or term.end >= day)):
            continue
        if term.customer_id not in active or term.start > active[term.customer_id].start:
            active[term.customer_id] = term
    totals: dict[str, Fraction] = {name: Fraction(0) for name in accounts.plans}
    for term in active.values():
        if term.plan is not None:
            totals[term.plan] = totals.get(term.plan, Fraction(0)) + term_monthly_charge(
                term, accounts.plans
            )
    return {name: from_nanos(_nanos(total)) for name, total in totals.items()}


def load_baseline(conn: Connection, end: date, days: int) -> Baseline:
    """The ``days`` days up to ``end`` (included)."""
    start = end - timedelta(days=days - 1)
    return Baseline(
        tuple(baseline_lines(conn, start, end)),
        tuple(daily_costs(conn, start, end)),
        plan_revenue(conn, end),
    )


def budget_limits(conn: Connection) -> tuple[list[BudgetLimit], list[str]]:
    """The store's budgets the simulator can project (everything, a feature, provider or model),
    as monthly limits, and the names of those it cannot (a user, customer or tag scope)."""
    limits, skipped = [], []
    for budget in list_budgets(conn):
        if budget.user_id or budget.customer_id or budget.tag_key:
            skipped.append(budget.name)
            continue
        limits.append(
            BudgetLimit(
                budget.name,
                monthly_limit(budget.limit_usd, budget.period),
                budget.feature,
                budget.provider,
                budget.model,
            )
        )
    return limits, skipped


def priced_models(conn: Connection) -> list[str]:
    """Every "provider/model" the price table has a version of: where a feature can move."""
    v = price_versions.c
    query = select(v.provider, v.model).distinct().order_by(v.provider, v.model)
    return [f"{provider}/{model}" for provider, model in conn.execute(query)]
