"""Reads of the raw ``calls``: always bounded (a page of calls, a sample) or narrowed by tags.

The rollups have no tags, so a tag filter reads the calls. A tag value is matched as a user
means it, the same on both stores: ``demo=true`` finds the JSON boolean ``true`` and the string
``"true"``, ``n=1`` the number 1 (or 1.0) and the string ``"1"``, ``plan=pro`` the string.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import pandas as pd
from sqlalchemy import (
    Engine,
    func,
    literal,
    or_,
    select,
)
from sqlalchemy import tablesample as sampled_table
from sqlalchemy.sql import ColumnElement

from dashboard.filter_model import Filters, dimensions
from tracking.schema import calls
from tracking.tag_match import tag_equals

LATENCY_SAMPLE = 50_000  # raw calls read at most for latency percentiles
DRILL_PAGE = 50


def calls_where(f: Filters, dialect: str, c: Any = calls.c) -> list[ColumnElement[bool]]:
    """The filters over the calls' columns: dates, dimensions and tags, as bound parameters."""
    where: list[ColumnElement[bool]] = [
        c.occurred_at >= datetime.combine(f.start, time(), UTC),
        c.occurred_at < datetime.combine(f.end + timedelta(days=1), time(), UTC),
    ]
    where += dimensions(f, c)
    values: dict[str, list[str]] = defaultdict(list)
    for key, value in f.tags:
        values[key].append(value)
    for key, wanted in values.items():  # one key given twice: either value
        where.append(or_(*(tag_equals(c.tags, key, v, dialect) for v in wanted)))
    return where


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
    PostgreSQL computes the percentiles itself (``percentile_cont``, the interpolation pandas
    uses), so two numbers come back instead of the sample: fetching 50,000 durations into
    Python took most of the Overview's latency read while the writer ingests.
    """
    c = calls.c
    source: Any = calls
    exact = in_range <= sample
    dialect = engine.dialect.name
    if not exact and dialect == "postgresql":
        percent = max(0.01, min(100.0, 100.0 * sample / in_range))
        source = sampled_table(calls, func.system(percent), name="sampled", seed=literal(7))
        c = source.c
    query = (
        select(c.duration_ms)
        .select_from(source)
        .where(*calls_where(f, dialect, c), c.duration_ms.is_not(None))
        .limit(None if exact else sample * 2)
    )
    with engine.connect() as conn:
        if dialect == "postgresql":
            ms = query.subquery().c.duration_ms
            count, p50, p95 = conn.execute(
                select(
                    func.count(ms),
                    func.percentile_cont(0.5).within_group(ms),
                    func.percentile_cont(0.95).within_group(ms),
                )
            ).one()
            if not count:
                return Latency(None, None, 0, exact)
            return Latency(float(p50), float(p95), int(count), exact)
        values = [int(v) for v in conn.execute(query).scalars()]
    if not values:
        return Latency(None, None, 0, exact)
    series = pd.Series(values, dtype="float64")
    return Latency(float(series.quantile(0.5)), float(series.quantile(0.95)), len(values), exact)


GROUP_COLUMN = {"user": "user_id", "feature": "feature", "provider": "provider", "model": "model"}
GROUPS = ("user", "feature", "provider", "model", "day")


def group_condition(group: str, value: Any) -> tuple[str, Any]:
    """The (column, value) a group's drill-down adds to the filters."""
    if group not in GROUPS:
        raise ValueError(f"group must be one of {GROUPS}, got {group!r}")
    return ("day" if group == "day" else GROUP_COLUMN[group]), value


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
    """One page of the raw calls of one group, newest first. ``cost_usd`` is exact (a Decimal),
    None where the call is unpriced."""
    column, value = group_condition(group, value)
    c = calls.c
    dialect = engine.dialect.name
    where = calls_where(f, dialect)
    if column == "day":
        day = value if isinstance(value, date) else date.fromisoformat(str(value))
        where = calls_where(f.with_dates(max(f.start, day), min(f.end, day)), dialect)
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
    return pd.DataFrame([tuple(r) for r in rows], columns=list(DRILL_COLUMNS))


def calls_after(engine: Engine, moment: datetime) -> tuple[int, datetime | None]:
    """How many calls are dated after ``moment``, and the latest date among them (calls logged
    with a wrong clock or a typo: the app says so instead of opening on their dates)."""
    c = calls.c
    query = select(func.count(), func.max(c.occurred_at)).where(c.occurred_at > moment)
    with engine.connect() as conn:
        count, last = conn.execute(query).one()
    return int(count), last


def cost_between(engine: Engine, f: Filters, start: datetime, end: datetime) -> tuple[int, Any]:
    """The calls and exact cost of the filtered calls from ``start`` up to ``end`` (a part of a
    day: the rollups hold whole days only). One day's calls at most, through the time index."""
    c = calls.c
    where = [*calls_where(f, engine.dialect.name), c.occurred_at >= start, c.occurred_at < end]
    with engine.connect() as conn:
        count, cost = conn.execute(select(func.count(), func.sum(c.cost_usd)).where(*where)).one()
    return int(count), cost if cost is not None else Decimal(0)
