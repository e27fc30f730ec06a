"""The reference catalogue against a store: load it into a new store, show how a store's prices
differ from it, and bring them up to it without overwriting anything.

One set of rules serves both ways of doing the last: ``catalogue_diff`` lists what a refresh
would write (nothing is written), ``accept_catalogue`` writes the entries chosen from that list
(the Pricing page), and ``refresh_catalogue`` (``python -m tracking prices refresh``) writes all
of them. Each accepted version is one ``audit_log`` row in the same transaction.

Only ``migrate``, ``prices refresh``, the Pricing page and the writer of a SQLite store it has
just created import this (and genai-prices with it): a host app that imports ``tracking`` never
pays for it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import Connection, delete, select, tuple_

from tracking.audit import record_change
from tracking.catalogue import CatalogueModel, CatalogueVersion, catalogue_models
from tracking.price_store import RateRow, add_version, lock_prices
from tracking.schema import model_patterns, price_versions, prices
from tracking.sqltypes import plain_decimal

Kind = Literal["added", "changed", "kept"]
ADDED: Kind = "added"  # a catalogue version the store lacks: written with its own date
CHANGED: Kind = "changed"  # the catalogue corrected the rates in force: a new version from now
KEPT: Kind = "kept"  # differs from the catalogue but is not in force: stays as stored
ACCEPTABLE: frozenset[str] = frozenset({ADDED, CHANGED})

# what the audit log names: one row per version written by an accept or a refresh
AUDIT_ACTION = "catalogue"
AUDIT_TABLE = "price_versions"

Rates = frozenset[tuple[str, str, int, Decimal, int]]


@dataclass(frozen=True)
class CatalogueChange:
    """One entry of the catalogue diff: what a refresh would do with one catalogue version.

    ``key`` is stable between a diff and an accept made later (it names the catalogue version,
    not the moment of the accept): pass it back to ``accept_catalogue``.
    """

    key: str
    kind: Kind
    provider: str
    model: str
    effective_from: datetime  # the date the new version would get (now, for "changed")
    catalogue_from: datetime  # the catalogue version's own date
    store_from: datetime | None  # the date of the store's version in force at effective_from
    store_rates: tuple[RateRow, ...] | None  # its rates; None: no version of it in force then
    catalogue_rates: tuple[RateRow, ...]
    differences: tuple[str, ...]  # per unit: "input_tokens: $9.99/1000000 -> $2.5/1000000"
    version: CatalogueVersion  # what accepting writes ("kept": the catalogue's, never written)

    @property
    def acceptable(self) -> bool:
        """ "added" and "changed" can be accepted; "kept" is listed only to be seen."""
        return self.kind in ACCEPTABLE

    @property
    def description(self) -> str:
        """What differs, in one line."""
        return "; ".join(self.differences)

    @property
    def store_text(self) -> str:
        return rates_text(self.store_rates) if self.store_rates is not None else "none"

    @property
    def catalogue_text(self) -> str:
        return rates_text(self.catalogue_rates)


@dataclass
class RefreshReport:
    """What a catalogue load, refresh or accept changed."""

    added: list[CatalogueVersion] = field(default_factory=list)
    changed: list[tuple[CatalogueVersion, dict[str, str]]] = field(default_factory=list)
    unchanged: int = 0
    kept: list[CatalogueVersion] = field(default_factory=list)  # differs, not in force: as stored
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (key, why): nothing written
    audit_ids: list[int] = field(default_factory=list)  # one audit_log row per version written

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
        for key, why in self.skipped:
            yield f"skipped {key}: {why}"
        yield (
            f"{len(self.added)} versions added, {len(self.changed)} changed, "
            f"{self.unchanged} unchanged, {len(self.kept)} kept as stored."
        )


def _label(r: RateRow) -> str:
    variant = "" if r.variant == "standard" else " " + r.variant
    tier = "" if not r.tier_above else f" >{r.tier_above}"
    return f"{r.unit}{variant}{tier}"


def describe_rates(rates: Iterable[RateRow]) -> dict[str, str]:
    """Each rate as the CLI and the page show it: {"input_tokens batch": "$1.25/1000000"}."""
    return {_label(r): f"${plain_decimal(r.rate)}/{r.per}" for r in rates}


def rates_text(rates: Iterable[RateRow]) -> str:
    """A version's rates in one line, in unit order."""
    return ", ".join(f"{k}: {v}" for k, v in sorted(describe_rates(rates).items()))


def _differences(store: Iterable[RateRow] | None, catalogue: Iterable[RateRow]) -> tuple[str, ...]:
    old, new = describe_rates(store or ()), describe_rates(catalogue)
    return tuple(
        f"{label}: {old.get(label, 'none')} -> {new.get(label, 'none')}"
        for label in sorted(old.keys() | new.keys())
        if old.get(label) != new.get(label)
    )


def _stored_versions(conn: Connection) -> dict[tuple[str, str], list[tuple[datetime, Rates]]]:
    """Each stored model's versions: (effective_from, the set of its rates), oldest first."""
    rates: dict[int, set[tuple[str, str, int, Decimal, int]]] = {}
    for row in conn.execute(select(prices)):
        rates.setdefault(row.version_id, set()).add(
            (row.unit, row.variant, int(row.tier_above), Decimal(row.rate).normalize(), row.per)
        )
    found: dict[tuple[str, str], list[tuple[datetime, Rates]]] = {}
    for row in conn.execute(select(price_versions).order_by(price_versions.c.effective_from)):
        found.setdefault((row.provider, row.model), []).append(
            (row.effective_from, frozenset(rates.get(row.id, ())))
        )
    return found


def _in_force_at(history: dict[datetime, Rates], moment: datetime) -> datetime | None:
    """The date of the stored version in force at ``moment`` (None before the first)."""
    dates = [d for d in history if d <= moment]
    return max(dates) if dates else None


def _rate_set(rates: Iterable[RateRow]) -> Rates:
    return frozenset((r.unit, r.variant, r.tier_above, r.rate.normalize(), r.per) for r in rates)


def _rate_rows(rates: Rates) -> tuple[RateRow, ...]:
    rows = (RateRow(unit, rate, per, tier, variant) for unit, variant, tier, rate, per in rates)
    return tuple(sorted(rows, key=lambda r: (r.unit, r.variant, r.tier_above)))


def change_key(kind: str, provider: str, model: str, catalogue_from: datetime) -> str:
    """The key of a diff entry: its kind, model and catalogue version, never the accept's now."""
    return f"{kind} {provider}/{model} {catalogue_from.astimezone(UTC).isoformat()}"


def _change(
    kind: Kind,
    version: CatalogueVersion,
    written: CatalogueVersion,
    history: dict[datetime, Rates],
) -> CatalogueChange:
    store_from = _in_force_at(history, written.effective_from)
    store_rates = None if store_from is None else _rate_rows(history[store_from])
    return CatalogueChange(
        key=change_key(kind, version.provider, version.model, version.effective_from),
        kind=kind,
        provider=version.provider,
        model=version.model,
        effective_from=written.effective_from,
        catalogue_from=version.effective_from,
        store_from=store_from,
        store_rates=store_rates,
        catalogue_rates=version.rates,
        differences=_differences(store_rates, version.rates),
        version=written,
    )


def _plan(
    conn: Connection, models: list[CatalogueModel], now: datetime
) -> tuple[list[CatalogueChange], int]:
    """The rules, in one place: every catalogue version the store does not hold as it is (in
    catalogue order), and how many it does.

    A catalogue version missing from the store is added with its own date. Where the store's
    version at the date of the catalogue version in force now has other rates (the catalogue
    corrected them), and the store's rates in force now differ too, a new version effective
    ``now`` is added: history is kept, and repricing the past is a choice made elsewhere. Any
    other difference (an older version, or rates an editor has since replaced) is kept.
    """
    stored = _stored_versions(conn)
    changes: list[CatalogueChange] = []
    unchanged = 0
    for entry in models:
        history = dict(stored.get((entry.provider, entry.model), []))
        current = [v for v in entry.versions if v.effective_from <= now][-1:]
        in_force = _in_force_at(history, now)
        for version in entry.versions:
            wanted = _rate_set(version.rates)
            if version.effective_from not in history:
                changes.append(_change(ADDED, version, version, history))
            elif history[version.effective_from] == wanted:
                unchanged += 1
            elif version in current and (in_force is None or history[in_force] != wanted):
                corrected = dataclasses.replace(version, effective_from=now, note="catalogue")
                changes.append(_change(CHANGED, version, corrected, history))
            else:
                changes.append(_change(KEPT, version, version, history))
    return changes, unchanged


def catalogue_diff(conn: Connection, now: datetime | None = None) -> list[CatalogueChange]:
    """What ``refresh_catalogue`` would write now, entry by entry, writing nothing: the
    "added" and "changed" entries (acceptable), and the "kept" ones (differ, not in force)."""
    changes, _unchanged = _plan(conn, catalogue_models(), now or datetime.now(UTC))
    return changes


def accept_catalogue(
    conn: Connection, keys: Iterable[str], who: str, now: datetime | None = None
) -> RefreshReport:
    """Write the entries of the diff named by ``keys``, by the rules of a refresh.

    The diff is computed again inside the caller's transaction (other accepts and refreshes of
    the store wait for it): a key that is no longer in it (already accepted, or the store or the
    catalogue changed since), or names a "kept" entry, is skipped with the reason in
    ``report.skipped`` and writes nothing. Each version written gets one audit_log row naming
    ``who``; the name patterns of the accepted models become the catalogue's.
    """
    return _apply(conn, set(keys), who, now)


def refresh_catalogue(
    conn: Connection, now: datetime | None = None, who: str = "cli"
) -> RefreshReport:
    """Bring the store's prices up to the catalogue without overwriting anything: accept every
    entry of the diff (see ``_plan`` for the rules), each with its audit_log row. Name patterns
    of all catalogue models are replaced by the catalogue's."""
    return _apply(conn, None, who, now)


def _apply(
    conn: Connection,
    keys: set[str] | None,
    who: str | None,
    now: datetime | None,
) -> RefreshReport:
    """Write the acceptable entries named by ``keys`` (all of them: None); audited unless
    ``who`` is None (a first load into an empty store)."""
    now = now or datetime.now(UTC)
    if who is not None:
        lock_prices(conn)
    models = catalogue_models()
    changes, unchanged = _plan(conn, models, now)
    report = RefreshReport(unchanged=unchanged, kept=[c.version for c in changes if c.kind == KEPT])
    if keys is None:
        chosen = [c for c in changes if c.acceptable]
    else:
        found = {c.key: c for c in changes}
        for key in sorted(keys):
            if key not in found:
                report.skipped.append(
                    (
                        key,
                        "not in the catalogue diff any more (already accepted, or the store or "
                        "the catalogue changed since): nothing written",
                    )
                )
            elif not found[key].acceptable:
                report.skipped.append(
                    (key, "kept: the store's version is not the one in force, it stays as stored")
                )
        chosen = [c for c in changes if c.key in keys and c.acceptable]
    for change in chosen:
        version_id = _write(conn, change.version)
        if change.kind == ADDED:
            report.added.append(change.version)
        else:
            report.changed.append((change.version, describe_rates(change.catalogue_rates)))
        if who is not None:
            report.audit_ids.append(_audit(conn, change, version_id, who))
    accepted = None if keys is None else {(c.provider, c.model) for c in chosen}
    _replace_patterns(conn, models, accepted)
    return report


def _rates_json(rates: Iterable[RateRow]) -> list[dict[str, Any]]:
    return [
        {
            "unit": r.unit,
            "variant": r.variant,
            "tier_above": r.tier_above,
            "rate": plain_decimal(r.rate),
            "per": r.per,
        }
        for r in sorted(rates, key=lambda r: (r.unit, r.variant, r.tier_above))
    ]


def _audit(conn: Connection, change: CatalogueChange, version_id: int, who: str) -> int:
    """before: the store's version in force from the new version's date (null: none);
    after: the version written. Money as decimal strings."""
    before = (
        None
        if change.store_from is None or change.store_rates is None
        else {
            "effective_from": change.store_from.isoformat(),
            "rates": _rates_json(change.store_rates),
        }
    )
    after = {
        "version_id": version_id,
        "effective_from": change.effective_from.isoformat(),
        "source": change.version.source,
        "rates": _rates_json(change.catalogue_rates),
    }
    note = f"{change.kind} ({change.key})"
    if change.differences:
        note += ": " + change.description
    return record_change(
        conn,
        who,
        AUDIT_ACTION,
        AUDIT_TABLE,
        f"{change.provider}/{change.model}",
        before,
        after,
        note=note,
    )


def _write(conn: Connection, version: CatalogueVersion) -> int:
    return add_version(
        conn,
        version.provider,
        version.model,
        version.effective_from,
        version.rates,
        source=version.source,
        note=version.note,
        created_by="catalogue",
    )


def _replace_patterns(
    conn: Connection, models: list[CatalogueModel], only: set[tuple[str, str]] | None = None
) -> None:
    """Catalogue patterns replace those of the same names; an editor's other patterns stay.
    ``only``: just the patterns of these (provider, model)s, at the places the whole catalogue
    gives them."""
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
    if only is not None:
        rows = {k: row for k, row in rows.items() if (row["provider"], row["model"]) in only}
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
    of a SQLite store it has just made); returns the versions written, 0 if it had prices.
    The price lock comes first: of two ``migrate`` runs at once, the second waits and finds
    the prices the first loaded, instead of failing on their unique key."""
    from tracking.price_store import version_count

    lock_prices(conn)
    return load_catalogue(conn) if version_count(conn) == 0 else 0


def load_catalogue(conn: Connection) -> int:
    """Load the catalogue into a store (normally an empty one); returns the versions written.
    A first load is the store's starting point, not an edit: no audit_log rows."""
    report = _apply(conn, None, None, None)
    return len(report.added) + len(report.changed)
