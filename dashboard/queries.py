"""Parameterised reads of the store, returning plain values or DataFrames. No SQL elsewhere.

Pages read the daily rollups, each through the smallest table that holds the keys the read needs
(``rollup_for``): their cost grows with the rollup rows of the date range, not with the calls
stored. Raw ``calls`` are read
only for a drill-down (one page of calls at a time), tag filters, and latency percentiles (a
bounded sample). Filters are always bound parameters built with SQLAlchemy Core. Money is
summed in SQL, exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import pandas as pd
from sqlalchemy import (
    Date,
    Engine,
    Row,
    Table,
    case,
    cast,
    func,
    literal,
    select,
    text,
)
from sqlalchemy.sql import ColumnElement

from dashboard.breakdown import Totals, finish_table
from dashboard.filter_model import Filters, dimensions, filtered
from dashboard.raw_calls import GROUP_COLUMN as _GROUP_COLUMN
from dashboard.raw_calls import GROUPS, calls_where
from tracking.schema import (
    PAGE_COUNTS,
    calls,
    daily_feature_model_rollups,
    daily_rollups,
    daily_user_rollups,
    rollup_keys,
)
from tracking.sqltypes import from_nanos, to_nanos

MAX_GROUPS = 1000  # rows a group-by returns at most (the most expensive first)


# The rollup tables, fewest rows first: (day, feature, provider, model) has a few hundred rows a
# day, (day, user) one per active user, (day, user, feature, provider, model) the most.
ROLLUPS_SMALLEST_FIRST = (daily_feature_model_rollups, daily_user_rollups, daily_rollups)


def rollup_for(f: Filters, *grouped: str) -> Table:
    """The one rule for which rollup a read uses: the smallest whose keys hold every column the
    read filters (``f``) or groups by (``grouped``). All hold the same calls, so all give the same
    sums; ``daily_rollups`` holds every key and answers any mix (a user and a feature, say)."""
    needed = {*filtered(f), *grouped}
    for table in ROLLUPS_SMALLEST_FIRST:
        if needed <= set(rollup_keys(table)):
            return table
    raise ValueError(f"no rollup is keyed by {sorted(needed)}")


def _rollup_where(f: Filters, r: Any) -> list[ColumnElement[bool]]:
    return [r.day >= f.start, r.day <= f.end, *dimensions(f, r)]


# A constant planner setting for one transaction: no parameters, nothing a caller passed.
_SERIAL = text("SET LOCAL max_parallel_workers_per_gather = 0")


def _read(engine: Engine, query: Any, source: Table) -> Sequence[Row[Any]]:
    """Run a read of ``source``. Over ``daily_user_rollups`` PostgreSQL runs it without parallel
    workers: it then ranks users from their covering index in user order. Measured at 10M calls
    (30 days, 25k users, 2 cores): 124-209 ms that way, 329-492 ms for the parallel sort it
    planned otherwise (bench/README.md, app pages)."""
    with engine.begin() as conn:
        if source is daily_user_rollups and conn.dialect.name == "postgresql":
            conn.execute(_SERIAL)
        return conn.execute(query).all()


def _money(value: Any) -> Decimal:
    """A sum that may be NULL (no rows) as a Decimal."""
    return value if isinstance(value, Decimal) else Decimal(value or 0)


# --- what the store holds --------------------------------------------------------------------


@dataclass(frozen=True)
class StoreSpan:
    first_day: date | None
    last_day: date | None

    @property
    def empty(self) -> bool:
        return self.last_day is None


def store_span(engine: Engine) -> StoreSpan:
    """The first and last day with calls: two lookups at the ends of the rollups' key."""
    r = daily_feature_model_rollups.c
    with engine.connect() as conn:
        first, last = conn.execute(select(func.min(r.day), func.max(r.day))).one()
    return StoreSpan(first, last)


def _rollup_sums(r: Any) -> tuple[Any, ...]:
    """The counts the pages show, summed over rollup rows (``daily_user_rollups``' covering
    index holds them, with the cost)."""
    return tuple(func.sum(r[name]) for name in PAGE_COUNTS)


TOTAL_COLUMNS = ("calls", "errors", "unpriced", "input_tokens", "output_tokens", "cost_nanos")
FRAME_COLUMNS = ("day", "provider", "model", "feature", *TOTAL_COLUMNS)


def _totals(count: Any, errors: Any, unpriced: Any, inp: Any, out: Any, cost: Any) -> tuple:
    """A row's sums as the frames hold them: counts as ints (a sum over no rows is NULL, so 0)
    and the cost as exact nano-dollars."""
    counts = (int(count), int(errors or 0), int(unpriced or 0), int(inp or 0), int(out or 0))
    return (*counts, to_nanos(_money(cost)))


def day_frame(engine: Engine, f: Filters) -> pd.DataFrame:
    """Totals per day, provider, model and feature: a few hundred rows that answer every
    breakdown but the per-user one (see ``dashboard.breakdown``), read in one pass.

    Costs come as exact integer nano-dollars (``cost_nanos``), summed in SQL.
    """
    r = rollup_for(f, "provider", "model", "feature").c
    keys = (r.day, r.provider, r.model, r.feature)
    query = (
        select(*keys, *_rollup_sums(r), func.sum(r.cost_usd))
        .where(*_rollup_where(f, r))
        .group_by(*keys)
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return pd.DataFrame(
        [(_day(d), p, m, feat or "(none)", *_totals(*sums)) for d, p, m, feat, *sums in rows],
        columns=list(FRAME_COLUMNS),
    ).astype({name: "int64" for name in FRAME_COLUMNS[4:]})


# --- totals and breakdowns from the rollups --------------------------------------------------


def unpriced_models(engine: Engine, f: Filters) -> pd.DataFrame:
    """The models with unpriced calls in the range, most such calls first."""
    r = rollup_for(f, "provider", "model").c
    unpriced = func.sum(r.unpriced_calls)
    query = (
        select(r.provider, r.model, unpriced)
        .where(*_rollup_where(f, r), r.unpriced_calls > 0)
        .group_by(r.provider, r.model)
        .order_by(unpriced.desc(), r.provider, r.model)
    )
    with engine.connect() as conn:
        rows = [(p, m, int(n)) for p, m, n in conn.execute(query)]
    return pd.DataFrame(rows, columns=["provider", "model", "unpriced"])


def totals(engine: Engine, f: Filters) -> Totals:
    r = rollup_for(f).c
    query = select(
        func.coalesce(func.sum(r.calls), 0),
        func.coalesce(func.sum(r.error_calls), 0),
        func.coalesce(func.sum(r.unpriced_calls), 0),
        func.sum(r.cost_usd),
        func.coalesce(func.sum(r.input_tokens), 0),
        func.coalesce(func.sum(r.output_tokens), 0),
    ).where(*_rollup_where(f, r))
    with engine.connect() as conn:
        row = conn.execute(query).one()
    return Totals(int(row[0]), int(row[1]), int(row[2]), _money(row[3]), int(row[4]), int(row[5]))


@dataclass(frozen=True)
class Grouped:
    """A group-by as a page shows it: the costliest groups (at most ``MAX_GROUPS``), how many
    groups there are in all, and the exact totals over all of them, whatever the table holds."""

    table: pd.DataFrame
    groups: int
    totals: Totals


def cost_by(engine: Engine, f: Filters, group: str, limit: int | None = None) -> Grouped:
    """Calls, errors, unpriced calls, tokens and cost per group, most expensive first.

    The totals over every group come from the same query, as window sums over all the groups
    before the limit, so they are exact however many groups the table leaves out.

    With tag filters the rollups cannot answer (they have no tags), so the raw calls of the date
    range are grouped instead: slower, and said so on the page.
    """
    if group not in GROUPS:
        raise ValueError(f"group must be one of {GROUPS}, got {group!r}")
    limit = MAX_GROUPS if limit is None else limit
    if f.tags:
        return _cost_by_from_calls(engine, f, group, limit)
    column = "day" if group == "day" else _GROUP_COLUMN[group]
    source = rollup_for(f, column)
    r = source.c
    sums = _rollup_sums(r)
    query = _grouped(
        r[column], group, sums, func.sum(r.cost_usd), _rollup_where(f, r), limit, overall=True
    )
    return _group_frame(_read(engine, query, source), group)


def top_users(engine: Engine, f: Filters, n: int = 8) -> pd.DataFrame:
    """The ``n`` most expensive users: the head of ``cost_by(f, "user")``.

    The query sums every column ``cost_by`` does although only calls and cost are shown: with
    them all, PostgreSQL reads the per-user rollups from their covering index in user order
    (see ``_read``) instead of hashing them.
    """
    source = rollup_for(f, "user_id")
    r = source.c
    sums = _rollup_sums(r)
    query = _grouped(r.user_id, "user", sums, func.sum(r.cost_usd), _rollup_where(f, r), n)
    rows = _read(engine, query, source)
    frame = pd.DataFrame(
        [(u or "(none)", *_totals(*sums)) for u, *sums in rows],
        columns=["user", *TOTAL_COLUMNS],
    ).astype({"cost_nanos": "int64"})
    return finish_table(frame)


def _cost_by_from_calls(engine: Engine, f: Filters, group: str, limit: int) -> Grouped:
    c = calls.c
    key: Any
    if group != "day":
        key = func.coalesce(c[_GROUP_COLUMN[group]], "")
    elif engine.dialect.name == "sqlite":
        key = func.date(c.occurred_at)  # stored as naive UTC text
    else:
        key = cast(func.timezone("UTC", c.occurred_at), Date)
    totals = (
        func.count(),
        func.sum(case((c.status != "ok", 1), else_=0)),
        func.sum(case((c.cost_usd.is_(None), 1), else_=0)),
        func.coalesce(func.sum(c.input_tokens), 0),
        func.coalesce(func.sum(c.output_tokens), 0),
    )
    cost = func.coalesce(func.sum(c.cost_usd), literal(0))  # unpriced-only groups sort as $0
    where = calls_where(f, engine.dialect.name)
    query = _grouped(key, group, totals, cost, where, limit, overall=True)
    return _group_frame(_read(engine, query, calls), group)


def _grouped(
    key: Any,
    group: str,
    totals: tuple[Any, ...],
    cost: Any,
    where: list[Any],
    limit: int,
    overall: bool = False,
) -> Any:
    """One row per group: calls, errors, unpriced, input and output tokens, cost (the columns
    ``_group_frame`` reads), by day in order or the costliest groups first. ``overall`` adds the
    number of groups and the sums over all of them (window sums, taken before the limit)."""
    over = (func.count().over(), *(func.sum(t).over() for t in (*totals, cost))) if overall else ()
    return (
        select(key.label(group), *totals, cost, *over)
        .where(*where)
        .group_by(key)
        .order_by(key if group == "day" else cost.desc(), key)
        .limit(limit)
    )


def _group_frame(rows: Sequence[Row[Any]], group: str) -> Grouped:
    width = 1 + len(TOTAL_COLUMNS)
    frame = pd.DataFrame(
        [
            (_day(k) if group == "day" else (k or "(none)"), *_totals(*sums))
            for k, *sums in (row[:width] for row in rows)
        ],
        columns=[group, *TOTAL_COLUMNS],
    ).astype({"cost_nanos": "int64"})
    if not rows:
        return Grouped(finish_table(frame), 0, Totals(0, 0, 0, Decimal(0), 0, 0))
    groups, *overall = rows[0][width:]
    n, errors, unpriced, inp, out, nanos = _totals(*overall)
    totals = Totals(n, errors, unpriced, from_nanos(nanos), inp, out)
    return Grouped(finish_table(frame), int(groups), totals)


def _day(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))
