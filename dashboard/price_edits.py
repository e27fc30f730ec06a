"""Edits of the price table, from the page's editor to new versions: every bad cell found and
named (row and column), nothing saved while one is, and a save that never overwrites.

Plain functions (no Streamlit): ``plan_edits`` compares the rows the editor started from with
the rows it holds now, model by model; ``save_plan`` writes one new version per changed model
with an audit row each, in one transaction, unless another editor saved one of those models
since this edit began (the optimistic check), in which case it writes nothing and says which.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Engine, false, func, select, update

from dashboard.price_table import (
    VARIANTS,
    latest_versions,
    model_key,
    quoted_per,
    rates_of,
    shown_rate,
    versions_in_force,
)
from tracking.audit import record_change
from tracking.price_store import RateRow, add_pattern, add_version, check_rate
from tracking.schema import price_versions

# the editor's columns, as the page labels them (a cell error names the label)
LABELS = {
    "provider": "Provider",
    "model": "Model",
    "unit": "Unit",
    "variant": "Variant",
    "tier_above": "Above input tokens",
    "rate": "Rate ($)",
    "new_from": "New from",
}
EDITOR_COLUMNS = list(LABELS)
PRICE_LOCK = 7_401_016  # the advisory lock every price save takes on PostgreSQL

Key = tuple[str, str]  # (provider, model)
RateKey = tuple[str, str, int]  # (unit, variant, tier_above)


@dataclass(frozen=True)
class CellError:
    row: int | None  # 1-based, as the editor numbers rows; None: the edit as a whole
    column: str | None
    message: str

    def __str__(self) -> str:
        where = []
        if self.row is not None:
            where.append(f"Row {self.row}")
        if self.column is not None:
            where.append(LABELS.get(self.column, self.column))
        return f"{', '.join(where)}: {self.message}" if where else self.message


@dataclass(frozen=True)
class ModelChange:
    """A new version of one priced model: its rates before (the version in force) and after."""

    provider: str
    model: str
    before: tuple[RateRow, ...]
    after: tuple[RateRow, ...]
    effective_from: datetime
    pattern: str | None = None  # a name pattern mapped to this model with the version

    @property
    def action(self) -> str:
        return "add" if not self.before else "retire" if not self.after else "edit"


@dataclass
class EditPlan:
    errors: list[CellError] = field(default_factory=list)
    changes: list[ModelChange] = field(default_factory=list)


@dataclass(frozen=True)
class Conflict:
    """Another editor saved this model after this edit began: what is in force now."""

    provider: str
    model: str
    current: dict[str, str]  # rate label -> shown rate, of the version in force now


@dataclass
class SaveResult:
    saved: list[tuple[ModelChange, int]] = field(default_factory=list)  # with the new version id
    conflicts: list[Conflict] = field(default_factory=list)


def _blank(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return value is pd.NaT or (isinstance(value, str) and not value.strip())


def _text(value: Any) -> str:
    return "" if _blank(value) else str(value).strip()


def parse_rate_text(value: Any) -> Decimal:
    """A rate cell: decimal text ("2.50", "$2.50") or a number; ValueError says what is wrong."""
    if _blank(value):
        raise ValueError("a rate is needed (0 for free)")
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a number of dollars")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value!r} is not a finite amount")
        value = repr(value)
    text = _text(value).removeprefix("$").strip()
    if not text:
        raise ValueError("a rate is needed (0 for free)")
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"{_text(value)!r} is not a number of dollars") from None
    if not amount.is_finite():
        raise ValueError(f"{_text(value)!r} is not a finite amount")
    if amount < 0:
        raise ValueError(f"{_text(value)} is negative: a rate is 0 or more")
    return amount


def parse_tier(value: Any) -> int:
    """A tier cell: a whole number of input tokens, 0 (every call) when blank."""
    if _blank(value):
        return 0
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a whole number of tokens")
    try:
        number = Decimal(str(value).strip().replace(",", ""))
    except InvalidOperation:
        raise ValueError(f"{value!r} is not a whole number of tokens") from None
    if not number.is_finite() or number != number.to_integral_value():
        raise ValueError(f"{value!r} is not a whole number of tokens")
    if number < 0:
        raise ValueError(f"{value!r} is negative: a tier starts above 0 or more input tokens")
    return int(number)


def parse_when(value: Any) -> datetime | None:
    """A "new from" cell: blank (the save's date), YYYY-MM-DD or YYYY-MM-DD HH:MM, in UTC."""
    if _blank(value):
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime.combine(value, time(), UTC)
    text = str(value).strip()
    try:
        found = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a date: write YYYY-MM-DD or YYYY-MM-DD HH:MM") from None
    return found if found.tzinfo else found.replace(tzinfo=UTC)


@dataclass(frozen=True)
class _Row:
    number: int
    key: Key
    rate_key: RateKey
    rate_text: str
    rate: Decimal
    new_from: datetime | None


def _read_rows(edited: pd.DataFrame, units: Iterable[str], plan: EditPlan) -> list[_Row]:
    """Each edited row checked cell by cell; a bad cell is an error, its row left out."""
    known = list(units)
    rows: list[_Row] = []
    seen: dict[tuple[str, str, str, str, int], int] = {}
    for number, record in enumerate(edited.to_dict("records"), start=1):
        if all(_blank(record.get(c)) for c in EDITOR_COLUMNS):
            continue  # a new row left empty
        errors = len(plan.errors)

        def bad(column: str, message: str, number: int = number) -> None:
            plan.errors.append(CellError(number, column, message))

        provider, model, unit = (_text(record.get(c)) for c in ("provider", "model", "unit"))
        variant = _text(record.get("variant")) or "standard"
        if not provider:
            bad("provider", "a provider is needed (as the calls name it, e.g. openai)")
        elif len(provider) > 64:
            bad("provider", "is longer than 64 characters")
        if not model:
            bad("model", "a model (or a pattern such as ft:gpt-4o-mini:*) is needed")
        elif len(model) > 200:
            bad("model", "is longer than 200 characters")
        if not unit:
            bad("unit", f"a unit is needed (one of {', '.join(known)})")
        elif unit not in known:
            shown = ", ".join(known)
            bad("unit", f"{unit!r} is not a unit the price table knows ({shown})")
        if variant not in VARIANTS:
            bad("variant", f"{variant!r} is neither {' nor '.join(VARIANTS)}")
        try:
            tier = parse_tier(record.get("tier_above"))
        except ValueError as exc:
            bad("tier_above", str(exc))
            tier = 0
        try:
            rate = parse_rate_text(record.get("rate"))
            check_rate(RateRow(unit or "rate", rate, quoted_per(unit)[0]))
        except ValueError as exc:
            bad("rate", str(exc))
            rate = Decimal(0)
        try:
            when = parse_when(record.get("new_from"))
        except ValueError as exc:
            bad("new_from", str(exc))
            when = None
        if len(plan.errors) > errors:
            continue
        identity = (provider, model, unit, variant, tier)
        if identity in seen:
            bad("unit", f"duplicates row {seen[identity]} ({provider}/{model} {unit} {variant})")
            continue
        seen[identity] = number
        text = _text(record.get("rate")).removeprefix("$").strip()
        rows.append(_Row(number, (provider, model), (unit, variant, tier), text, rate, when))
    return rows


def _stored(conn: Connection, now: datetime) -> tuple[dict[Key, Any], dict[Key, list[Any]]]:
    versions = versions_in_force(conn, now)
    rates = rates_of(conn, (v.id for v in versions.values()))
    return versions, {key: rates[v.id] for key, v in versions.items()}


def _rate_row(row: _Row, stored: Mapping[RateKey, Any], started: Mapping[RateKey, str]) -> RateRow:
    """The edited rate as stored: the rate in force where the row's text is as the editor
    showed it (kept exactly, not rounded through the quoted unit), else the new amount per
    the quoted unit."""
    unit, variant, tier = row.rate_key
    old = stored.get(row.rate_key)
    if old is not None and started.get(row.rate_key) == row.rate_text:
        return RateRow(unit, Decimal(old.rate), int(old.per), tier, variant)
    per, _ = quoted_per(unit, None if old is None else int(old.per))
    return RateRow(unit, row.rate, per, tier, variant)


def _as_rate_row(r: Any) -> RateRow:
    return RateRow(r.unit, Decimal(r.rate), int(r.per), int(r.tier_above), r.variant)


def plan_edits(
    conn: Connection,
    original: pd.DataFrame,
    edited: pd.DataFrame,
    units: Iterable[str],
    default_from: datetime,
    now: datetime | None = None,
) -> EditPlan:
    """What saving the editor would do. ``original`` is what the editor started from (every
    rate in force of the models it shows): a model whose rows in ``edited`` differ from those
    gets a new version of those rows (a row gone is a rate retired; an unchanged row keeps its
    stored rate exactly). A row of a model not shown adds to (or replaces a rate of) that
    model's rates in force. A model's new version starts from its rows' "new from" date or
    else ``default_from``, which must be after the version it replaces."""
    now = now or datetime.now(UTC)
    plan = EditPlan()
    started = _read_rows(original, units, EditPlan())
    rows = _read_rows(edited, units, plan)
    versions, stored = _stored(conn, now)
    all_versions = _all_starts(conn)
    shown: dict[Key, dict[RateKey, str]] = {}
    for row in started:
        shown.setdefault(row.key, {})[row.rate_key] = row.rate_text
    shown_keys = set(shown)
    by_model: dict[Key, list[_Row]] = {}
    for row in rows:
        by_model.setdefault(row.key, []).append(row)
    for key in sorted(shown_keys | by_model.keys()):
        mine = by_model.get(key, [])
        texts = {r.rate_key: r.rate_text for r in mine}
        if key in shown_keys and texts == shown[key] and all(r.new_from is None for r in mine):
            continue  # as the editor showed it: whatever the store holds now is not this edit
        before = [_as_rate_row(r) for r in stored.get(key, [])]
        old = {(r.unit, r.variant, r.tier_above): r for r in stored.get(key, [])}
        after = {r.rate_key: _rate_row(r, old, shown.get(key, {})) for r in mine}
        if key not in shown_keys:  # rows added for a model the editor did not show
            after = {(r.unit, r.variant, r.tier_above): r for r in before} | after
        if set(after.values()) == set(before):
            dated = [r for r in mine if r.new_from is not None]
            for r in dated:
                plan.errors.append(
                    CellError(r.number, "new_from", "nothing of this model changed: clear the date")
                )
            continue
        change = _dated_change(key, before, list(after.values()), mine, default_from, plan)
        if change is None:
            continue
        message = _date_problem(versions.get(key), all_versions.get(key, []), change.effective_from)
        if message is not None:
            dated = [r for r in mine if r.new_from is not None]
            if dated:
                plan.errors.extend(CellError(r.number, "new_from", message) for r in dated)
            else:
                plan.errors.append(CellError(None, None, f"{model_key(*key)}: {message}"))
            continue
        plan.changes.append(change)
    if plan.errors:
        plan.changes = []  # nothing is saved while any cell is bad
    return plan


def _dated_change(
    key: Key,
    before: list[RateRow],
    after: list[RateRow],
    mine: list[_Row],
    default_from: datetime,
    plan: EditPlan,
) -> ModelChange | None:
    dates = {r.new_from for r in mine if r.new_from is not None}
    if len(dates) > 1:
        for r in mine:
            if r.new_from is not None:
                message = f"rows of {model_key(*key)} have different dates: one version, one date"
                plan.errors.append(CellError(r.number, "new_from", message))
        return None
    when = dates.pop() if dates else default_from
    order = sorted(after, key=lambda r: (r.unit, r.variant, r.tier_above))
    return ModelChange(key[0], key[1], tuple(before), tuple(order), when)


def _all_starts(conn: Connection) -> dict[Key, list[datetime]]:
    query = select(
        price_versions.c.provider, price_versions.c.model, price_versions.c.effective_from
    )
    found: dict[Key, list[datetime]] = {}
    for provider, model, start in conn.execute(query):
        found.setdefault((provider, model), []).append(start)
    return found


def _date_problem(replaced: Any, starts: list[datetime], when: datetime) -> str | None:
    """Why a new version from ``when`` cannot replace the version in force (None if it can):
    it must start after that version, and not at the moment another version starts."""
    if replaced is not None and when <= replaced.effective_from:
        return (
            f"{when:%Y-%m-%d %H:%M} is not after the version it replaces "
            f"(in force from {replaced.effective_from:%Y-%m-%d %H:%M} UTC)"
        )
    if when in starts:
        return f"another version starts at {when:%Y-%m-%d %H:%M} UTC: choose another moment"
    return None


def rate_json(rates: Iterable[RateRow]) -> dict[str, Any]:
    """Rates as the audit log keeps them: label -> {"rate": decimal text, "per": units}."""
    found = {}
    for r in rates:
        label = r.unit + ("" if r.variant == "standard" else f" {r.variant}")
        label += f" >{r.tier_above}" if r.tier_above else ""
        found[label] = {"rate": f"{r.rate:f}", "per": r.per}
    return found


def _lock(conn: Connection) -> None:
    """Serialise price saves: PostgreSQL's advisory lock for the transaction, SQLite's write
    lock (taken by a write that matches nothing)."""
    if conn.dialect.name == "postgresql":
        conn.execute(select(func.pg_advisory_xact_lock(PRICE_LOCK)))
    else:
        conn.execute(update(price_versions).where(false()).values(note=price_versions.c.note))


def save_plan(
    engine: Engine,
    plan: EditPlan,
    base: Mapping[Key, int | None],
    who: str,
    note: str | None = None,
    now: datetime | None = None,
) -> SaveResult:
    """Write the plan's versions (source "editor", by ``who``) and an audit row for each, in
    one transaction; or, where a changed model's newest version is not the one in ``base``
    (the ids the edit began from), write nothing and return those conflicts."""
    if plan.errors:
        raise ValueError("an edit with bad cells is not saved: " + "; ".join(map(str, plan.errors)))
    now = now or datetime.now(UTC)
    result = SaveResult()
    with engine.begin() as conn:
        _lock(conn)
        latest = latest_versions(conn)
        changed = [
            c
            for c in plan.changes
            if latest.get((c.provider, c.model)) != base.get((c.provider, c.model))
        ]
        if changed:
            _, stored = _stored(conn, now)
            for c in changed:
                rows = stored.get((c.provider, c.model), [])
                current = {
                    label: f"${shown_rate(r.rate, r.per, r.unit)} {quoted_per(r.unit, r.per)[1]}"
                    for label, r in ((_label(r), r) for r in rows)
                }
                result.conflicts.append(Conflict(c.provider, c.model, current))
            conn.rollback()
            return result
        for change in plan.changes:
            version = add_version(
                conn,
                change.provider,
                change.model,
                change.effective_from,
                change.after,
                source="editor",
                note=note,
                created_by=who,
                retire=True,
            )
            if change.pattern is not None:
                add_pattern(conn, change.provider, change.pattern, change.model)
            after = {
                "version_id": version,
                "effective_from": change.effective_from.isoformat(),
                "rates": rate_json(change.after),
            }
            if change.pattern is not None:
                after["pattern"] = change.pattern
            record_change(
                conn,
                who,
                change.action,
                "price_versions",
                model_key(change.provider, change.model),
                {"rates": rate_json(change.before)} if change.before else None,
                after,
                note=note,
            )
            result.saved.append((change, version))
    return result


def _label(r: Any) -> str:
    label = r.unit + ("" if r.variant == "standard" else f" {r.variant}")
    return label + (f" >{int(r.tier_above):,}" if r.tier_above else "")


def new_model_change(
    conn: Connection,
    provider: str,
    name: str,
    rates: Iterable[RateRow],
    effective_from: datetime,
    now: datetime | None = None,
) -> EditPlan:
    """A price for a model the calls name but the table lacks (the "add a price" form): ``name``
    is the model or a pattern (``ft:gpt-4o-mini:*``), priced as a model of that name."""
    plan = EditPlan()
    name = name.strip()
    if not provider.strip():
        plan.errors.append(CellError(None, "provider", "a provider is needed"))
    if not name:
        plan.errors.append(CellError(None, "model", "a model name or pattern is needed"))
    chosen = list(rates)
    if not chosen:
        plan.errors.append(CellError(None, "rate", "give at least one rate"))
    for r in chosen:
        try:
            check_rate(r)
        except ValueError as exc:
            plan.errors.append(CellError(None, "rate", str(exc)))
    if plan.errors:
        return plan
    key = (provider.strip(), name)
    versions, stored = _stored(conn, now or datetime.now(UTC))
    message = _date_problem(versions.get(key), _all_starts(conn).get(key, []), effective_from)
    if message is not None:
        plan.errors.append(CellError(None, "new_from", f"{model_key(*key)}: {message}"))
        return plan
    pattern = name if any(ch in name for ch in "*?[") else None
    before = tuple(_as_rate_row(r) for r in stored.get(key, []))
    plan.changes.append(ModelChange(key[0], key[1], before, tuple(chosen), effective_from, pattern))
    return plan
