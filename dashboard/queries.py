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
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
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
    tablesample,
    text,
)
from sqlalchemy.sql import ColumnElement

from dashboard.breakdown import Totals, finish_table
from tracking.schema import (
    PAGE_COUNTS,
    calls,
    daily_feature_model_rollups,
    daily_rollups,
    daily_user_rollups,
    rollup_keys,
)
from tracking.sqltypes import to_nanos

GROUPS = ("user", "feature", "provider", "model", "day")
_GROUP_COLUMN = {"user": "user_id", "feature": "feature", "provider": "provider", "model": "model"}
MAX_GROUPS = 1000  # rows a group-by returns at most (the most expensive first)
LATENCY_SAMPLE = 50_000  # raw calls read at most for latency percentiles
DRILL_PAGE = 50


@dataclass(frozen=True)
class Filters:
    """What the sidebar (and the Costs page) narrows the data to. Empty tuples mean "all"."""

    start: date
    end: date  # inclusive
    providers: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    features: tuple[str, ...] = ()
    users: tuple[str, ...] = ()
    tags: tuple[tuple[str, str], ...] = field(default=())  # (key, value): raw calls only

    def with_dates(self, start: date, end: date) -> Filters:
        return Filters(
            start, end, self.providers, self.models, self.features, self.users, self.tags
        )


_FILTERED = (
    ("providers", "provider"),
    ("models", "model"),
    ("features", "feature"),
    ("users", "user_id"),
)


def _filtered(f: Filters) -> dict[str, tuple[str, ...]]:
    """{column: values} of the provider, model, feature and user filters that are set."""
    return {column: getattr(f, name) for name, column in _FILTERED if getattr(f, name)}


def _dimensions(f: Filters, cols: Any) -> list[ColumnElement[bool]]:
    """The provider, model, feature and user filters, over a rollup's or the calls' columns."""
    return [cols[column].in_(values) for column, values in _filtered(f).items()]


# The rollup tables, fewest rows first: (day, feature, provider, model) has a few hundred rows a
# day, (day, user) one per active user, (day, user, feature, provider, model) the most.
ROLLUPS_SMALLEST_FIRST = (daily_feature_model_rollups, daily_user_rollups, daily_rollups)


def rollup_for(f: Filters, *grouped: str) -> Table:
    """The one rule for which rollup a read uses: the smallest whose keys hold every column the
    read filters (``f``) or groups by (``grouped``). All hold the same calls, so all give the same
    sums; ``daily_rollups`` holds every key and answers any mix (a user and a feature, say)."""
    needed = {*_filtered(f), *grouped}
    for table in ROLLUPS_SMALLEST_FIRST:
        if needed <= set(rollup_keys(table)):
            return table
    raise ValueError(f"no rollup is keyed by {sorted(needed)}")


def _rollup_where(f: Filters, r: Any) -> list[ColumnElement[bool]]:
    return [r.day >= f.start, r.day <= f.end, *_dimensions(f, r)]


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


def _calls_where(f: Filters, c: Any = calls.c) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = [
        c.occurred_at >= datetime.combine(f.start, time(), UTC),
        c.occurred_at < datetime.combine(f.end + timedelta(days=1), time(), UTC),
    ]
    where += _dimensions(f, c)
    for key, value in f.tags:
        where.append(c.tags[key].as_string() == value)
    return where


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


def cost_by(engine: Engine, f: Filters, group: str, limit: int = MAX_GROUPS) -> pd.DataFrame:
    """Calls, errors, unpriced calls, tokens and cost per group, most expensive first.

    With tag filters the rollups cannot answer (they have no tags), so the raw calls of the date
    range are grouped instead: slower, and said so on the page.
    """
    if group not in GROUPS:
        raise ValueError(f"group must be one of {GROUPS}, got {group!r}")
    if f.tags:
        return _cost_by_from_calls(engine, f, group, limit)
    column = "day" if group == "day" else _GROUP_COLUMN[group]
    source = rollup_for(f, column)
    r = source.c
    sums = _rollup_sums(r)
    query = _grouped(r[column], group, sums, func.sum(r.cost_usd), _rollup_where(f, r), limit)
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
    return pd.DataFrame(
        [(u or "(none)", int(calls_), float(_money(c))) for u, calls_, *_, c in rows],
        columns=["user", "calls", "cost_usd"],
    )


def _cost_by_from_calls(engine: Engine, f: Filters, group: str, limit: int) -> pd.DataFrame:
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
    cost = func.coalesce(func.sum(c.cost_usd), literal(0))  # unpriced-only groups: $0, not NULL
    query = _grouped(key, group, totals, cost, _calls_where(f), limit)
    return _group_frame(_read(engine, query, calls), group)


def _grouped(
    key: Any, group: str, totals: tuple[Any, ...], cost: Any, where: list[Any], limit: int
) -> Any:
    """One row per group: calls, errors, unpriced, input and output tokens, cost (the columns
    ``_group_frame`` reads), by day in order or the costliest groups first."""
    return (
        select(key.label(group), *totals, cost)
        .where(*where)
        .group_by(key)
        .order_by(key if group == "day" else cost.desc(), key)
        .limit(limit)
    )


def _group_frame(rows: Sequence[Row[Any]], group: str) -> pd.DataFrame:
    frame = pd.DataFrame(
        [(_day(k) if group == "day" else (k or "(none)"), *_totals(*sums)) for k, *sums in rows],
        columns=[group, *TOTAL_COLUMNS],
    ).astype({"cost_nanos": "int64"})
    return finish_table(frame)


def _day(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


# --- raw calls: bounded reads -----------------------------------------------------------------


@dataclass(frozen=True)
class Latency:
    p50_ms: float | None
    p95_ms: float | None
    sampled: int  # calls the percentiles were computed from
    exact: bool  # False when they come from a sample of the range


def latency(engine: Engine, f: Filters, in_range: int, sample: int = LATENCY_SAMPLE) -> Latency:
    """p50 and p95 of ``duration_ms`` over the calls of the range.

    ``in_range`` is the rollups' count of those calls: up to ``sample`` calls are read exactly;
    beyond that PostgreSQL reads a repeatable page sample (TABLESAMPLE SYSTEM) sized to about
    ``sample`` calls, and SQLite the first ``sample`` calls found. Either way the read is bounded.
    """
    c = calls.c
    source: Any = calls
    exact = in_range <= sample
    if not exact and engine.dialect.name == "postgresql":
        percent = max(0.01, min(100.0, 100.0 * sample / in_range))
        source = tablesample(calls, func.system(percent), name="sampled", seed=literal(7))
        c = source.c
    query = (
        select(c.duration_ms)
        .select_from(source)
        .where(*_calls_where(f, c), c.duration_ms.is_not(None))
        .limit(None if exact else sample * 2)
    )
    with engine.connect() as conn:
        values = [int(v) for v in conn.execute(query).scalars()]
    if not values:
        return Latency(None, None, 0, exact)
    series = pd.Series(values, dtype="float64")
    return Latency(float(series.quantile(0.5)), float(series.quantile(0.95)), len(values), exact)


def group_condition(group: str, value: Any) -> tuple[str, Any]:
    """The (column, value) a group's drill-down adds to the filters."""
    if group not in GROUPS:
        raise ValueError(f"group must be one of {GROUPS}, got {group!r}")
    return ("day" if group == "day" else _GROUP_COLUMN[group]), value


DRILL_COLUMNS = (
    "occurred_at",
    "provider",
    "model",
    "feature",
    "user_id",
    "status",
    "error_type",
    "duration_ms",
    "input_tokens",
    "cache_read_tokens",
    "output_tokens",
    "cost_usd",
)


def drill_down(
    engine: Engine, f: Filters, group: str, value: Any, page: int = 0, size: int = DRILL_PAGE
) -> pd.DataFrame:
    """One page of the raw calls of one group, newest first."""
    column, value = group_condition(group, value)
    c = calls.c
    narrowed = f
    where = _calls_where(f)
    if column == "day":
        day = _day(value)
        narrowed = f.with_dates(max(f.start, day), min(f.end, day))
        where = _calls_where(narrowed)
    elif value in ("", "(none)") and column in ("user_id", "feature"):
        where.append(c[column].is_(None))
    else:
        where.append(c[column] == value)
    query = (
        select(*(c[name] for name in DRILL_COLUMNS))
        .where(*where)
        .order_by(c.occurred_at.desc(), c.id)
        .limit(size)
        .offset(max(0, page) * size)
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    frame = pd.DataFrame([tuple(r) for r in rows], columns=list(DRILL_COLUMNS))
    frame["cost_usd"] = [None if v is None else float(v) for v in frame["cost_usd"]]
    return frame
