"""Spend anomalies: a UTC day whose spend for a scope is more than ``k`` times the median of the
scope's 14 days before it, and at least a minimum amount (so a tiny scope going from 2 cents to
10 does not alert).

Scopes (:data:`SCOPES`): ``all`` (every call), each ``feature``, each ``model`` and each
``user``, read from the narrowest daily rollup that holds them, exact Decimal throughout. Days
are UTC days, as the rollups keep them. The trailing window counts a day without any call of the
scope as $0, but only from the scope's first day in the window on: a feature launched five days
ago has five days of history, not nine zeros and five days. A day with fewer than
``min_history_days`` of history is not judged. Calls without a feature or user (the rollups'
empty key) count in ``all`` only.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import Connection, func, select

from tracking.schema import daily_feature_model_rollups, daily_user_rollups

SCOPES = ("all", "feature", "model", "user")
_DAY = timedelta(days=1)


def _decimal(name: str, value: Any) -> Decimal:
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise ValueError(f"{name}: {value!r} is not a number") from None
    if not number.is_finite() or number < 0:
        raise ValueError(f"{name}: {value!r} must be a finite number, not negative")
    return number


@dataclass(frozen=True)
class AnomalyRule:
    """When a day is an anomaly: spend > ``k`` x the trailing median and >= ``min_usd``."""

    k: Decimal = Decimal(3)
    min_usd: Decimal = Decimal(10)
    window_days: int = 14
    min_history_days: int = 7
    scopes: tuple[str, ...] = SCOPES

    def __post_init__(self) -> None:
        object.__setattr__(self, "k", _decimal("k", self.k))
        object.__setattr__(self, "min_usd", _decimal("min_usd", self.min_usd))
        if self.k < 1:
            raise ValueError(f"k: {self.k} must be at least 1 (a day above its own median)")
        if not 1 <= self.min_history_days <= self.window_days:
            raise ValueError(
                f"min_history_days: {self.min_history_days} must be 1..{self.window_days}"
            )
        unknown = set(self.scopes) - set(SCOPES)
        if unknown or not self.scopes:
            raise ValueError(f"scopes: choose from {', '.join(SCOPES)}, got {self.scopes!r}")


@dataclass(frozen=True)
class Anomaly:
    """A day's spend of one scope against its trailing median."""

    scope: str  # one of SCOPES
    value: str | None  # the feature, model or user; None for "all"
    day: date
    spend: Decimal
    median: Decimal
    history_days: int

    def describe(self) -> str:
        """'feature=chat' or 'all calls'."""
        return "all calls" if self.value is None else f"{self.scope}={self.value}"


def judge(
    daily: Mapping[date, Decimal], day: date, rule: AnomalyRule, since: date
) -> tuple[Decimal, int] | None:
    """The trailing median and the days it was taken over when ``day`` is an anomaly of the
    series ``daily`` (a missing day is $0) whose history starts at ``since``; else None. Pure."""
    spend = daily.get(day, Decimal(0))
    if spend < rule.min_usd or spend <= 0:
        return None
    first = max(since, day - rule.window_days * _DAY)
    window = [daily.get(first + i * _DAY, Decimal(0)) for i in range((day - first).days)]
    if len(window) < rule.min_history_days:
        return None
    median = Decimal(statistics.median(window))
    return (median, len(window)) if spend > rule.k * median else None


def _series(conn: Connection, scope: str, first: date, last: date) -> dict[Any, dict[date, Any]]:
    """Cost per scope value and day, from ``first`` to ``last`` (UTC days), exact."""
    table = daily_user_rollups if scope == "user" else daily_feature_model_rollups
    c = table.c
    keys = [] if scope == "all" else [c["user_id" if scope == "user" else scope]]
    query = (
        select(*keys, c.day, func.sum(c.cost_usd))
        .where(c.day >= first, c.day <= last, *(k != "" for k in keys))
        .group_by(*keys, c.day)
    )
    found: dict[Any, dict[date, Any]] = {}
    for row in conn.execute(query):
        *value, day, cost = row
        found.setdefault(value[0] if value else None, {})[day] = cost or Decimal(0)
    return found


def find_anomalies(
    conn: Connection, first: date, last: date, rule: AnomalyRule | None = None
) -> list[Anomaly]:
    """The anomalies of the UTC days ``first`` to ``last`` in every scope of ``rule``, by day,
    then scope and value."""
    rule = rule or AnomalyRule()
    found: list[Anomaly] = []
    start = first - rule.window_days * _DAY
    for scope in rule.scopes:
        for value, daily in _series(conn, scope, start, last).items():
            since = min(daily)
            day = first
            while day <= last:
                judged = judge(daily, day, rule, since)
                if judged is not None:
                    median, days = judged
                    found.append(Anomaly(scope, value, day, daily[day], median, days))
                day += _DAY
    order = {s: i for i, s in enumerate(SCOPES)}
    return sorted(found, key=lambda a: (a.day, order[a.scope], a.value or ""))
