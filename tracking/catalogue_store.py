"""The reference catalogue against a store: load it into a new store, or bring a store's
prices up to it without overwriting anything (``python -m tracking prices refresh``).

Only ``migrate``, ``prices refresh`` and the writer of a SQLite store it has just created import
this (and genai-prices with it): a host app that imports ``tracking`` never pays for it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, delete, select, tuple_

from tracking.catalogue import CatalogueModel, CatalogueVersion, catalogue_models
from tracking.price_store import RateRow, add_version
from tracking.schema import model_patterns, price_versions, prices


@dataclass
class RefreshReport:
    """What a catalogue load or refresh changed."""

    added: list[CatalogueVersion] = field(default_factory=list)
    changed: list[tuple[CatalogueVersion, dict[str, str]]] = field(default_factory=list)
    unchanged: int = 0
    kept: list[CatalogueVersion] = field(default_factory=list)  # differs, not in force: as stored

    def lines(self) -> Iterator[str]:
        for version, diff in self.changed:
            changes = ", ".join(f"{k}: {v}" for k, v in sorted(diff.items()))
            yield (
                f"changed {version.provider}/{version.model} "
                f"(from {version.effective_from:%Y-%m-%d}): {changes}"
            )
        for version in self.added:
            yield (
                f"added {version.provider}/{version.model} from {version.effective_from:%Y-%m-%d}"
            )
        for version in self.kept:
            yield (
                f"kept {version.provider}/{version.model} "
                f"from {version.effective_from:%Y-%m-%d} as stored (differs from the catalogue)"
            )
        yield (
            f"{len(self.added)} versions added, {len(self.changed)} changed, "
            f"{self.unchanged} unchanged, {len(self.kept)} kept as stored."
        )


def _describe(rates: Iterable[RateRow]) -> dict[str, str]:
    return {
        f"{r.unit}{'' if r.variant == 'standard' else ' ' + r.variant}"
        f"{'' if not r.tier_above else f' >{r.tier_above}'}": f"${r.rate.normalize()}/{r.per}"
        for r in rates
    }


def _stored_versions(
    conn: Connection,
) -> dict[tuple[str, str], list[tuple[datetime, frozenset]]]:
    """Each stored model's versions: (effective_from, the set of its rates), oldest first."""
    rates: dict[int, set[tuple[str, str, int, Decimal, int]]] = {}
    for row in conn.execute(select(prices)):
        rates.setdefault(row.version_id, set()).add(
            (row.unit, row.variant, int(row.tier_above), Decimal(row.rate).normalize(), row.per)
        )
    found: dict[tuple[str, str], list[tuple[datetime, frozenset]]] = {}
    for row in conn.execute(select(price_versions).order_by(price_versions.c.effective_from)):
        found.setdefault((row.provider, row.model), []).append(
            (row.effective_from, frozenset(rates.get(row.id, ())))
        )
    return found


def _in_force(history: dict[datetime, frozenset], now: datetime) -> frozenset | None:
    dates = [d for d in history if d <= now]
    return history[max(dates)] if dates else None


def _rate_set(rates: Iterable[RateRow]) -> frozenset:
    return frozenset((r.unit, r.variant, r.tier_above, r.rate.normalize(), r.per) for r in rates)


def refresh_catalogue(conn: Connection, now: datetime | None = None) -> RefreshReport:
    """Bring the store's prices up to the catalogue without overwriting anything.

    A catalogue version missing from the store is added with its own date. Where the store's
    version in force at a catalogue date has other rates (the catalogue corrected them), a new
    version effective ``now`` is added: history is kept, and repricing the past is a choice made
    elsewhere. Name patterns of catalogue models are replaced by the catalogue's.
    """
    now = now or datetime.now(UTC)
    stored = _stored_versions(conn)
    report = RefreshReport()
    models = catalogue_models()
    for entry in models:
        history = dict(stored.get((entry.provider, entry.model), []))
        current = [v for v in entry.versions if v.effective_from <= now][-1:]
        for version in entry.versions:
            wanted = _rate_set(version.rates)
            if version.effective_from not in history:
                _write(conn, version)
                report.added.append(version)
            elif history[version.effective_from] == wanted:
                report.unchanged += 1
            elif version in current and _in_force(history, now) != wanted:
                # the catalogue corrected the rates in force: a new version from now on
                corrected = dataclasses.replace(version, effective_from=now, note="catalogue")
                _write(conn, corrected)
                report.changed.append((corrected, _describe(version.rates)))
            else:
                report.kept.append(version)
    _replace_patterns(conn, models)
    return report


def _write(conn: Connection, version: CatalogueVersion) -> None:
    add_version(
        conn,
        version.provider,
        version.model,
        version.effective_from,
        version.rates,
        source=version.source,
        note=version.note,
        created_by="catalogue",
    )


def _replace_patterns(conn: Connection, models: list[CatalogueModel]) -> None:
    """Catalogue patterns replace those of the same names; an editor's other patterns stay."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    position: dict[str, int] = {}
    for entry in models:
        for pattern in entry.patterns:
            key = (entry.provider, pattern)
            if key in rows:
                continue  # the first model in catalogue order owns a pattern
            position[entry.provider] = position.get(entry.provider, 0) + 1
            rows[key] = {
                "provider": entry.provider,
                "pattern": pattern,
                "model": entry.model,
                "position": position[entry.provider],
            }
    keys = list(rows)
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        conn.execute(
            delete(model_patterns).where(
                tuple_(model_patterns.c.provider, model_patterns.c.pattern).in_(chunk)
            )
        )
    values = list(rows.values())
    for start in range(0, len(values), 1000):
        conn.execute(model_patterns.insert(), values[start : start + 1000])


def load_catalogue_if_empty(conn: Connection) -> int:
    """Load the catalogue into a store whose price table is empty (``migrate``, and the writer
    of a SQLite store it has just made); returns the versions written, 0 if it had prices."""
    from tracking.price_store import version_count

    return load_catalogue(conn) if version_count(conn) == 0 else 0


def load_catalogue(conn: Connection) -> int:
    """Load the catalogue into a store (normally an empty one); returns the versions written."""
    report = refresh_catalogue(conn)
    return len(report.added) + len(report.changed)
