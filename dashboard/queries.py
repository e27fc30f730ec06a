"""Parameterised reads of the store, returning plain values or DataFrames. No SQL elsewhere."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from sqlalchemy import Engine, func, select

from tracking.schema import daily_rollups, price_versions


@dataclass(frozen=True)
class StoreSummary:
    calls: int
    cost_usd: Decimal
    unpriced_calls: int
    first_day: date | None
    last_day: date | None
    price_versions: int


def store_summary(engine: Engine) -> StoreSummary:
    """What is in the store, from the daily rollups (cheap at any size)."""
    r = daily_rollups.c
    with engine.connect() as conn:
        row = conn.execute(
            select(
                func.coalesce(func.sum(r.calls), 0),
                func.sum(r.cost_usd),
                func.coalesce(func.sum(r.unpriced_calls), 0),
                func.min(r.day),
                func.max(r.day),
            )
        ).one()
        versions = conn.execute(select(func.count()).select_from(price_versions)).scalar_one()
    return StoreSummary(
        calls=int(row[0]),
        cost_usd=row[1] if row[1] is not None else Decimal(0),
        unpriced_calls=int(row[2]),
        first_day=row[3],
        last_day=row[4],
        price_versions=int(versions),
    )
