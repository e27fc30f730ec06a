"""Writing price versions: an edit is always a new version, the history stays."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import Connection, delete, func, insert, select

from tracking.schema import model_patterns, price_versions, prices
from tracking.write_lock import take_write_lock

PRICE_LOCK = 7_401_016  # the PostgreSQL advisory lock every writer of price versions takes


def lock_prices(conn: Connection) -> None:
    """Make this transaction the store's only writer of price versions until it ends: every
    writer takes it (editor, catalogue, ``prices add``), so versions commit in id order and a
    check made after taking it stays true until commit. PostgreSQL: an advisory transaction
    lock (taken again by the same transaction, it returns at once); SQLite: its write lock,
    taken by a write that changes nothing before anything is read."""
    take_write_lock(conn, PRICE_LOCK, price_versions, "note")


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
    retire: bool = False,
) -> int:
    """Insert a new price version with its rates and return its id. ``retire`` allows a
    version without rates: the model has no price from its date on (its calls are unpriced)."""
    lock_prices(conn)
    rows = list(rates)
    if not rows and not retire:
        raise ValueError(f"a price version of {provider}/{model} needs at least one rate")
    for row in rows:
        check_rate(row)
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
    if not rows:
        return version_id  # a retirement: no rates from this date on
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


RATE_DECIMALS = 12  # NUMERIC(24, 12): a longer rate would be rounded by PostgreSQL
RATE_LIMIT = Decimal(10) ** 12


def check_rate(row: RateRow) -> None:
    """Refuse a rate the store could not keep exactly (ValueError naming the unit)."""
    if not row.rate.is_finite() or row.rate < 0:
        raise ValueError(f"rate of {row.unit} must be a finite, non-negative amount")
    if row.rate >= RATE_LIMIT:
        raise ValueError(f"rate of {row.unit} must be below ${RATE_LIMIT:,}")
    exponent = row.rate.normalize().as_tuple().exponent
    if isinstance(exponent, int) and -exponent > RATE_DECIMALS:
        raise ValueError(
            f"rate of {row.unit} has more than {RATE_DECIMALS} decimal places (the store keeps "
            f"{RATE_DECIMALS}): give it per more units instead"
        )
    if row.per <= 0:
        raise ValueError(f"per of {row.unit} must be a positive whole number")


def add_pattern(conn: Connection, provider: str, pattern: str, model: str) -> None:
    """Let calls whose model name matches ``pattern`` (an exact name or a glob such as
    ``ft:gpt-4o-mini:*``) be priced as ``model``; ahead of the catalogue's patterns (position
    0), replacing an earlier mapping of the same pattern."""
    name = pattern.lower()
    conn.execute(
        delete(model_patterns).where(
            model_patterns.c.provider == provider, model_patterns.c.pattern == name
        )
    )
    conn.execute(
        insert(model_patterns).values(provider=provider, pattern=name, model=model, position=0)
    )


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
