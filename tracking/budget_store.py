"""Budgets in the store: add, list and remove them (each write audited in its transaction), and
what a budget's scope spent in a period, exactly, with its unpriced calls counted.

Where the spend comes from (the rule is explained in :mod:`tracking.budget_periods`): the UTC
days wholly inside the period from the narrowest rollup table that has the scope's columns, the
partial UTC days at its edges (a timezone other than UTC) from the raw calls; a budget scoped to
a tag reads the raw calls of its whole period, since the rollups carry no tags. A customer's
scope is the user ids ``customer_users`` gives the customer, at the time of reading.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import Connection, Table, and_, case, delete, func, insert, select, update
from sqlalchemy.sql import ColumnElement

from tracking.audit import record_change
from tracking.budget_periods import (
    Period,
    check_period,
    check_timezone,
    period_at,
    rolled_limit,
    split_days,
)
from tracking.events import plain_text
from tracking.schema import (
    DEFAULT_THRESHOLDS,
    budgets,
    calls,
    customer_users,
    daily_feature_model_rollups,
    daily_rollups,
    daily_user_rollups,
)
from tracking.sqltypes import NANO, plain_decimal
from tracking.tag_match import tag_equals
from tracking.write_lock import take_write_lock

SCOPE_FIELDS = ("user_id", "customer_id", "feature", "provider", "model", "tag_key", "tag_value")
MAX_LIMIT = Decimal(10) ** 11  # NUMERIC(20, 9): eleven digits before the point
THRESHOLD_RANGE = (1, 1000)  # percents of the limit
BUDGET_LOCK = 7_401_017  # the PostgreSQL advisory lock every writer of budgets takes


class BudgetError(ValueError):
    """A budget refused: ``field`` names what is wrong (a column of ``budgets``, or "name" for a
    duplicate or unknown name), ``reason`` says why. Nothing was written."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True)
class Budget:
    """One budget: a scope (each field None = any), a calendar period in an IANA timezone and a
    limit in dollars, with soft ``thresholds`` (percents), a ``hard`` flag and ``rollover``."""

    name: str
    limit_usd: Decimal
    period: str = "month"
    timezone: str = "UTC"
    user_id: str | None = None
    customer_id: str | None = None
    feature: str | None = None
    provider: str | None = None
    model: str | None = None
    tag_key: str | None = None
    tag_value: str | None = None
    thresholds: tuple[int, ...] = DEFAULT_THRESHOLDS
    hard: bool = False
    rollover: bool = False
    created_at: datetime | None = field(default=None, compare=False)
    created_by: str | None = field(default=None, compare=False)

    @property
    def scope(self) -> dict[str, str]:
        """The scope's keys that are set: {} covers every call."""
        return {k: v for k in SCOPE_FIELDS if (v := getattr(self, k)) is not None}

    def describe_scope(self) -> str:
        """'all calls', or 'user=u_42, tag team=growth'."""
        parts = [f"{k.removesuffix('_id')}={v}" for k, v in self.scope.items() if "tag" not in k]
        if self.tag_key is not None:
            parts.append(f"tag {self.tag_key}={self.tag_value}")
        return ", ".join(parts) or "all calls"


def _text(name: str, value: Any, limit: int) -> None:
    if not isinstance(value, str):
        raise BudgetError(name, f"must be text, got {value!r}")
    if not value.strip():
        raise BudgetError(name, "must not be empty (leave it out to mean any)")
    if value != value.strip():
        raise BudgetError(name, f"{value!r} has spaces at its ends")
    if len(value) > limit:
        raise BudgetError(name, f"is longer than {limit} characters")
    try:  # PostgreSQL's text refuses NUL; no UTF-8 encoder writes a lone surrogate
        plain_text(name, value)
    except ValueError:
        raise BudgetError(name, "must not contain NUL characters or lone surrogates") from None


def check_limit(value: Any) -> Decimal:
    """A limit in dollars: a finite amount from 0 to under $100bn, to the nano-dollar at most."""
    try:
        amount = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise BudgetError("limit_usd", f"{value!r} is not an amount of dollars") from None
    if not amount.is_finite():
        raise BudgetError("limit_usd", f"{value!r} must be a finite amount of dollars")
    if amount < 0:
        raise BudgetError("limit_usd", f"{value!r} must not be negative")
    if amount >= MAX_LIMIT:
        raise BudgetError("limit_usd", f"{value!r} is too large (at most {MAX_LIMIT - 1:,})")
    if amount != amount.quantize(NANO):
        raise BudgetError("limit_usd", f"{value!r} is finer than a nano-dollar (0.000000001)")
    return amount


def check_thresholds(values: Iterable[Any]) -> tuple[int, ...]:
    """Whole percents from 1 to 1000, strictly ascending, at least one."""
    found: list[int] = []
    low, high = THRESHOLD_RANGE
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int):
            try:
                number = Decimal(str(value).strip())
            except InvalidOperation:
                raise BudgetError("thresholds", f"{value!r} is not a whole percent") from None
            if not number.is_finite() or number != number.to_integral_value():
                raise BudgetError("thresholds", f"{value!r} is not a whole percent")
            value = int(number)
        if not low <= value <= high:
            raise BudgetError("thresholds", f"{value}% is outside {low}..{high}")
        if found and value <= found[-1]:
            raise BudgetError("thresholds", f"must ascend, but {value} follows {found[-1]}")
        found.append(value)
    if not found:
        raise BudgetError("thresholds", "give at least one percent, e.g. 50,80,100")
    return tuple(found)


def validate_budget(budget: Budget) -> Budget:
    """The budget, checked and normalised (limit a Decimal, thresholds a tuple of ints), or
    BudgetError naming the first field that is wrong. Pure: no store needed."""
    _text("name", budget.name, 200)
    try:
        check_period(budget.period)
    except ValueError as exc:
        raise BudgetError("period", str(exc)) from None
    try:
        check_timezone(budget.timezone)
    except ValueError as exc:
        raise BudgetError("timezone", str(exc)) from None
    limit = check_limit(budget.limit_usd)
    for name in SCOPE_FIELDS:
        value = getattr(budget, name)
        if value is not None:
            _text(name, value, 64 if name == "provider" else 200)
    if (budget.tag_key is None) != (budget.tag_value is None):
        raise BudgetError("tag_key", "a tag scope needs a key and a value (team=growth)")
    thresholds = check_thresholds(budget.thresholds)
    for name in ("hard", "rollover"):
        if not isinstance(getattr(budget, name), bool):
            raise BudgetError(name, f"must be true or false, got {getattr(budget, name)!r}")
    return replace(budget, limit_usd=limit, thresholds=thresholds)


def _row(budget: Budget) -> dict[str, Any]:
    values = {f.name: getattr(budget, f.name) for f in fields(budget)}
    values["thresholds"] = list(budget.thresholds)
    return values


def _from_row(row: Any) -> Budget:
    values = dict(row._mapping)
    values["thresholds"] = tuple(int(v) for v in values["thresholds"])
    values["hard"], values["rollover"] = bool(values["hard"]), bool(values["rollover"])
    return Budget(**values)


def budget_json(budget: Budget) -> dict[str, Any]:
    """A budget for the audit log: money as an exact decimal string, the time ISO."""
    values = _row(budget)
    values["limit_usd"] = plain_decimal(budget.limit_usd)
    if budget.created_at is not None:
        values["created_at"] = budget.created_at.astimezone(UTC).isoformat()
    return values


def get_budget(conn: Connection, name: str) -> Budget | None:
    row = conn.execute(select(budgets).where(budgets.c.name == name)).first()
    return None if row is None else _from_row(row)


def list_budgets(conn: Connection) -> list[Budget]:
    """Every budget, by name."""
    return [_from_row(r) for r in conn.execute(select(budgets).order_by(budgets.c.name))]


def lock_budgets(conn: Connection) -> None:
    """Make this transaction the store's only writer of budgets until it ends, so that what a
    writer checks (a name free, a budget as the editor saw it) stays true until it commits.
    PostgreSQL: an advisory transaction lock; SQLite: its write lock, taken by a write that
    changes nothing before anything is read."""
    take_write_lock(conn, BUDGET_LOCK, budgets, "name")


def _as_began(conn: Connection, name: str, began: Budget | None) -> Budget:
    """The stored budget ``name`` (under the lock), refused when it is gone or, given what the
    editor ``began`` from, when someone else changed it since: never a silent overwrite."""
    lock_budgets(conn)
    found = get_budget(conn, name)
    if found is None and began is not None:
        raise BudgetError("name", f"budget {name!r} was removed by someone else since you began")
    if found is None:
        raise BudgetError("name", f"no budget named {name!r}")
    if began is not None and found != began:
        raise BudgetError("name", f"budget {name!r} was changed by someone else since you began")
    return found


def add_budget(conn: Connection, budget: Budget, who: str, now: datetime | None = None) -> Budget:
    """Store a new budget and its audit row (action "add") in the caller's transaction; returns
    it as stored. Refuses (BudgetError, nothing written) a name already taken and any bad
    field (:func:`validate_budget`)."""
    budget = validate_budget(budget)
    lock_budgets(conn)
    if get_budget(conn, budget.name) is not None:
        raise BudgetError("name", f"a budget named {budget.name!r} exists already")
    stored = replace(budget, created_at=(now or datetime.now(UTC)).astimezone(UTC), created_by=who)
    conn.execute(insert(budgets).values(_row(stored)))
    record_change(conn, who, "add", budgets.name, stored.name, None, budget_json(stored))
    return stored


def change_budget(
    conn: Connection, budget: Budget, who: str, began: Budget | None = None
) -> Budget:
    """Replace the stored budget of ``budget.name`` with ``budget`` and audit it (action
    "edit", before and after) in the caller's transaction; its creation time and author stay,
    so a rollover budget keeps carrying. Refuses (BudgetError, nothing written) an unknown name,
    any bad field and, given the budget the edit ``began`` from, one changed since; an unchanged
    budget writes nothing."""
    budget = validate_budget(budget)
    found = _as_began(conn, budget.name, began)
    stored = replace(budget, created_at=found.created_at, created_by=found.created_by)
    if stored == found:
        return found
    values = {
        k: v for k, v in _row(stored).items() if k not in ("name", "created_at", "created_by")
    }
    conn.execute(update(budgets).where(budgets.c.name == budget.name).values(values))
    record_change(
        conn, who, "edit", budgets.name, budget.name, budget_json(found), budget_json(stored)
    )
    return stored


def remove_budget(conn: Connection, name: str, who: str, began: Budget | None = None) -> Budget:
    """Delete the budget ``name`` and audit it (action "remove", the budget as before); returns
    what was removed. An unknown name, or one changed since the budget the edit ``began`` from,
    is refused (BudgetError), nothing written."""
    found = _as_began(conn, name, began)
    conn.execute(delete(budgets).where(budgets.c.name == name))
    record_change(conn, who, "remove", budgets.name, name, budget_json(found), None)
    return found


# --- spend ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Spend:
    """What a budget's scope spent in ``period``: ``amount`` exact (priced calls), and
    ``unpriced_calls``, the calls of the scope whose cost is unknown ("plus N calls of unknown
    cost"), never counted as $0 silently."""

    period: Period
    amount: Decimal
    unpriced_calls: int


def _scope_where(budget: Budget, cols: Any, dialect: str) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    for name in ("user_id", "feature", "provider", "model"):
        value = getattr(budget, name)
        if value is not None:
            where.append(cols[name] == value)
    if budget.customer_id is not None:
        users = select(customer_users.c.user_id).where(
            customer_users.c.customer_id == budget.customer_id
        )
        where.append(cols["user_id"].in_(users.scalar_subquery()))
    if budget.tag_key is not None and budget.tag_value is not None:
        where.append(tag_equals(cols["tags"], budget.tag_key, budget.tag_value, dialect))
    return where


def rollup_for(budget: Budget) -> Table | None:
    """The narrowest rollup table holding the budget's scope columns; None for a tag scope."""
    if budget.tag_key is not None:
        return None
    needs = {k for k in ("feature", "provider", "model") if getattr(budget, k) is not None}
    user = budget.user_id is not None or budget.customer_id is not None
    if not needs:
        return daily_user_rollups
    return daily_rollups if user else daily_feature_model_rollups


def _sum(conn: Connection, query: Any) -> tuple[Decimal, int]:
    amount, unpriced = conn.execute(query).one()
    return (amount if amount is not None else Decimal(0)), int(unpriced or 0)


def _from_rollups(
    conn: Connection, budget: Budget, table: Table, first: date, last: date
) -> tuple[Decimal, int]:
    c = table.c
    where = [c.day >= first, c.day <= last, *_scope_where(budget, c, conn.dialect.name)]
    return _sum(conn, select(func.sum(c.cost_usd), func.sum(c.unpriced_calls)).where(*where))


def _from_calls(
    conn: Connection, budget: Budget, start: datetime, end: datetime
) -> tuple[Decimal, int]:
    c = calls.c
    where = [c.occurred_at >= start, c.occurred_at < end]
    where += _scope_where(budget, c, conn.dialect.name)
    unpriced = func.sum(case((c.cost_usd.is_(None), 1), else_=0))
    return _sum(conn, select(func.sum(c.cost_usd), unpriced).where(and_(*where)))


def daily_rollup_spend(
    conn: Connection, budget: Budget, first: date, last: date
) -> dict[date, tuple[Decimal, int]]:
    """The scope's (cost, unpriced calls) of each UTC day from ``first`` to ``last`` that has
    any, from the rollups in one grouped query; ValueError for a tag scope (no rollup has
    tags)."""
    table = rollup_for(budget)
    if table is None:
        raise ValueError("a tag scope has no rollups: read its calls (spent_in)")
    c = table.c
    where = [c.day >= first, c.day <= last, *_scope_where(budget, c, conn.dialect.name)]
    query = (
        select(c.day, func.sum(c.cost_usd), func.sum(c.unpriced_calls))
        .where(*where)
        .group_by(c.day)
    )
    return {
        day: (amount if amount is not None else Decimal(0), int(unpriced or 0))
        for day, amount, unpriced in conn.execute(query)
    }


def calls_spend(
    conn: Connection, budget: Budget, start: datetime, end: datetime
) -> tuple[Decimal, int]:
    """The scope's (cost, unpriced calls) of the raw calls in [start, end)."""
    return _from_calls(conn, budget, start, end)


def spent_in(conn: Connection, budget: Budget, period: Period) -> Spend:
    """What the budget's scope spent in ``period`` (any period: the current, a past one)."""
    table = rollup_for(budget)
    if table is None:
        parts = [_from_calls(conn, budget, period.start, period.end)]
    else:
        split = split_days(period)
        parts = [_from_calls(conn, budget, lo, hi) for lo, hi in split.raw_ranges]
        if split.whole_days:
            first, last = split.whole_days[0], split.whole_days[-1]
            parts.append(_from_rollups(conn, budget, table, first, last))
    return Spend(
        period=period,
        amount=sum((a for a, _ in parts), Decimal(0)),
        unpriced_calls=sum(n for _, n in parts),
    )


def spent(conn: Connection, budget: Budget, now: datetime | None = None) -> Spend:
    """What the budget's scope spent in its period holding ``now`` (default: this moment)."""
    period = period_at(budget.period, budget.timezone, now or datetime.now(UTC))
    return spent_in(conn, budget, period)


def limit_in(conn: Connection, budget: Budget, period: Period) -> Decimal:
    """The budget's limit for ``period``: with rollover, plus what the previous period left
    unspent of the limit (:func:`~tracking.budget_periods.rolled_limit`: one period at most,
    never less than the limit), carried only when the budget existed before ``period``
    started (a budget added today carries nothing into its first period)."""
    if not carries_into(budget, period):
        return budget.limit_usd
    return rolled_limit(budget.limit_usd, spent_in(conn, budget, period.previous()).amount)


def carries_into(budget: Budget, period: Period) -> bool:
    """Whether ``period``'s limit carries the previous period's unspent budget (the rule of
    :func:`limit_in`)."""
    if not budget.rollover:
        return False
    return budget.created_at is None or budget.created_at < period.start


@dataclass(frozen=True)
class BudgetStatus:
    """A budget in its current period: what was spent of which limit."""

    budget: Budget
    spend: Spend
    limit: Decimal  # the period's limit, rollover included

    @property
    def percent_used(self) -> Decimal | None:
        """Spent as a percent of the limit; None for a limit of $0 (any spend exceeds it)."""
        if self.limit == 0:
            return None
        return self.spend.amount * 100 / self.limit

    @property
    def remaining(self) -> Decimal:
        """What is left of the limit (negative when overspent)."""
        return self.limit - self.spend.amount


def status(conn: Connection, budget: Budget, now: datetime | None = None) -> BudgetStatus:
    """The budget's spend and limit in its period holding ``now``."""
    found = spent(conn, budget, now)
    return BudgetStatus(budget, found, limit_in(conn, budget, found.period))
