"""Writing price versions: an edit is always a new version, the history stays."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import Connection, delete, func, insert, select

from tracking.schema import model_patterns, price_versions, prices


@dataclass(frozen=True)
class RateRow:
    """One rate of a version: ``rate`` dollars per ``per`` units of ``unit``."""

    unit: str
    rate: Decimal
    per: int
    tier_above: int = 0
    variant: str = "standard"


def add_version(
    conn: Connection,
    provider: str,
    model: str,
    effective_from: datetime,
    rates: Iterable[RateRow],
    source: str,
    note: str | None = None,
    created_by: str | None = None,
) -> int:
    """Insert a new price version with its rates and return its id."""
    rows = list(rates)
    if not rows:
        raise ValueError(f"a price version of {provider}/{model} needs at least one rate")
    for row in rows:
        if row.rate < 0 or not row.rate.is_finite():
            raise ValueError(f"rate of {row.unit} must be a finite, non-negative amount")
        if row.per <= 0:
            raise ValueError(f"per of {row.unit} must be a positive whole number")
    version_id = conn.execute(
        insert(price_versions)
        .values(
            provider=provider,
            model=model,
            effective_from=effective_from,
            source=source,
            note=note,
            created_at=datetime.now(UTC),
            created_by=created_by,
        )
        .returning(price_versions.c.id)
    ).scalar_one()
    conn.execute(
        insert(prices),
        [
            {
                "version_id": version_id,
                "unit": r.unit,
                "tier_above": r.tier_above,
                "variant": r.variant,
                "rate": r.rate,
                "per": r.per,
            }
            for r in rows
        ],
    )
    return version_id


def set_patterns(
    conn: Connection, provider: str, model: str, patterns: Iterable[tuple[str, int]]
) -> None:
    """Replace the name patterns (exact names or globs, with their match order) of a model."""
    conn.execute(
        delete(model_patterns).where(
            model_patterns.c.provider == provider, model_patterns.c.model == model
        )
    )
    rows = [
        {"provider": provider, "pattern": p.lower(), "model": model, "position": pos}
        for p, pos in patterns
    ]
    if rows:
        conn.execute(insert(model_patterns), rows)


def version_count(conn: Connection) -> int:
    return conn.execute(select(func.count()).select_from(price_versions)).scalar_one()
