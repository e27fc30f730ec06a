"""Edits of the price table, from the page's editor to new versions: every bad cell found and
named (row and column), nothing saved while one is, and a save that never overwrites.

Plain functions (no Streamlit): ``plan_edits`` takes what the user changed (the rows the
editor holds against the rows it started from) and applies it, model by model, to the version
in force at the new version's date; ``save_plan`` writes one new version per changed model with
an audit row each, in one transaction, unless a version of one of those models was saved since
this edit began (the optimistic check: the newest version id when it began), in which case it
writes nothing and says which, with the rates in force now.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from fnmatch import fnmatchcase
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Engine, func, select

from dashboard.editor_state import unstorable_cells as editor_cells
from dashboard.formats import cell_message
from dashboard.price_table import (
    VARIANTS,
    model_key,
    quoted_per,
    rate_label,
    rate_text,
    rates_of,
    usual_pers,
    versions_in_force,
)
from tracking.audit import record_change
from tracking.events import unstorable
from tracking.price_store import RateRow, add_pattern, add_version, check_rate, lock_prices
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
GLOB = "*?["  # a model name with one of these is a pattern

Key = tuple[str, str]  # (provider, model)
RateKey = tuple[str, str, int]  # (unit, variant, tier_above)


@dataclass(frozen=True)
class CellError:
    row: int | None  # 1-based, as the editor numbers rows; None: the edit as a whole
    column: str | None
    message: str

    def __str__(self) -> str:
        label = None if self.column is None else LABELS.get(self.column, self.column)
        return cell_message(self.row, label, self.message)


@dataclass(frozen=True)
class ModelChange:
    """A new version of one priced model: its rates before (the version in force) and after."""

    provider: str
    model: str
    before: tuple[RateRow, ...]
    after: tuple[RateRow, ...]
    effective_from: datetime
    pattern: str | None = None  # a name pattern mapped to this model with the version
    writes_version: bool = True  # False: only ``pattern`` is mapped to a model priced already

    @property
    def action(self) -> str:
        if not self.writes_version:
            return "alias"
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
    saved: list[tuple[ModelChange, int | None]] = field(default_factory=list)  # new version ids
    conflicts: list[Conflict] = field(default_factory=list)
    seen: int = 0  # the newest version id when the conflicts were found: a base to save over


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


def unstorable_cells(state: Mapping[str, Any], shown: int) -> list[CellError]:
    """The editor state's cells no store can hold (``editor_state.unstorable_cells``), which
    Streamlit leaves out of the table it returns, as the page's cell errors."""
    return [CellError(row, column, why) for row, column, why in editor_cells(state, shown)]


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
        elif why := unstorable(provider):
            bad("provider", why)
        if not model:
            bad("model", "a model (or a pattern such as ft:gpt-4o-mini:*) is needed")
        elif len(model) > 200:
            bad("model", "is longer than 200 characters")
        elif why := unstorable(model):
            bad("model", why)
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


def _as_rate_row(r: Any) -> RateRow:
    return RateRow(r.unit, Decimal(r.rate), int(r.per), int(r.tier_above), r.variant)


def _in_force_at(conn: Connection, key: Key, when: datetime) -> tuple[Any, dict[RateKey, Any]]:
    """The version of a model in force at ``when`` (None if none yet) and its rates by key."""
    query = (
        select(price_versions.c.id, price_versions.c.effective_from)
        .where(
            price_versions.c.provider == key[0],
            price_versions.c.model == key[1],
            price_versions.c.effective_from <= when,
        )
        .order_by(price_versions.c.effective_from.desc())
        .limit(1)
    )
    version = conn.execute(query).first()
    if version is None:
        return None, {}
    rows = rates_of(conn, [version.id])[version.id]
    return version, {(r.unit, r.variant, int(r.tier_above)): r for r in rows}


def _new_rate(row: _Row, stored: Any, per_of_unit: Mapping[str, int]) -> RateRow:
    """An edited or added rate as stored: the amount per the unit it is quoted in, which for a
    unit without a fixed one (web searches, document pages) is the ``per`` it is stored with
    here, or elsewhere in the table."""
    unit, variant, tier = row.rate_key
    known = int(stored.per) if stored is not None else per_of_unit.get(unit)
    per, _ = quoted_per(unit, known)
    return RateRow(unit, row.rate, per, tier, variant)


def plan_edits(
    conn: Connection,
    original: pd.DataFrame,
    edited: pd.DataFrame,
    units: Iterable[str],
    default_from: datetime,
    now: datetime | None = None,
) -> EditPlan:
    """What saving the editor would do. ``original`` is what the editor started from (every
    rate in force of the models it shows); what the user did is the difference of ``edited``
    from it: rates changed or added, rows deleted (a rate retired). That is applied to each
    model's version in force at the new version's date (its rows' "new from" date, else
    ``default_from``, which must be after that version): a rate the user left alone keeps what
    the store holds, exactly, and a version another editor saved meanwhile is built on, not
    undone (``save_plan`` still refuses it unless the user saw it). The date must be after
    the version in force ``now`` (the one the editor showed, which the edit replaces)."""
    now = now or datetime.now(UTC)
    plan = EditPlan()
    started = _read_rows(original, units, EditPlan())
    rows = _read_rows(edited, units, plan)
    starts = _all_starts(conn)
    per_of_unit = usual_pers(conn)
    shown: dict[Key, dict[RateKey, str]] = {}
    for row in started:
        shown.setdefault(row.key, {})[row.rate_key] = row.rate_text
    by_model: dict[Key, list[_Row]] = {}
    for row in rows:
        by_model.setdefault(row.key, []).append(row)
    for key in sorted(shown.keys() | by_model.keys()):
        mine = by_model.get(key, [])
        began = shown.get(key, {})
        edits = {r.rate_key: r for r in mine if began.get(r.rate_key) != r.rate_text}
        removed = began.keys() - {r.rate_key for r in mine}
        if not edits and not removed:
            for r in mine:
                if r.new_from is not None:
                    message = "nothing of this model changed: clear the date"
                    plan.errors.append(CellError(r.number, "new_from", message))
            continue
        when = _change_date(key, mine, default_from, plan)
        if when is None:
            continue
        replaced, _ = _in_force_at(conn, key, now)
        message = _date_problem(replaced, starts.get(key, []), when)
        _, stored = _in_force_at(conn, key, when)  # a version scheduled before it included
        if message is not None:
            dated = [r for r in mine if r.new_from is not None]
            if dated:
                plan.errors.extend(CellError(r.number, "new_from", message) for r in dated)
            else:
                plan.errors.append(CellError(None, None, f"{model_key(*key)}: {message}"))
            continue
        before = {k: _as_rate_row(r) for k, r in stored.items()}
        after = {k: r for k, r in before.items() if k not in removed}
        after |= {k: _new_rate(r, stored.get(k), per_of_unit) for k, r in edits.items()}
        if set(after.values()) == set(before.values()):
            continue  # typed back to what the store holds ("2.50" for 2.5)
        # a new model named with a glob is a pattern; a priced one keeps the mappings it has
        # (an exact model named "**x**" must not become a pattern when its rates change)
        pattern = key[1] if not starts.get(key) and any(ch in key[1] for ch in GLOB) else None
        order = sorted(after.values(), key=lambda r: (r.unit, r.variant, r.tier_above))
        plan.changes.append(
            ModelChange(key[0], key[1], tuple(before.values()), tuple(order), when, pattern)
        )
    if plan.errors:
        plan.changes = []  # nothing is saved while any cell is bad
    return plan


def _change_date(
    key: Key, mine: list[_Row], default_from: datetime, plan: EditPlan
) -> datetime | None:
    """The date of a model's new version: its rows' one "new from" date, else the default."""
    dates = {r.new_from for r in mine if r.new_from is not None}
    if len(dates) > 1:
        for r in mine:
            if r.new_from is not None:
                message = f"rows of {model_key(*key)} have different dates: one version, one date"
                plan.errors.append(CellError(r.number, "new_from", message))
        return None
    return dates.pop() if dates else default_from


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


def newest_version(conn: Connection) -> int:
    """The newest price version id: an edit's base (versions commit in id order: every writer
    takes ``lock_prices``)."""
    return int(conn.execute(select(func.coalesce(func.max(price_versions.c.id), 0))).scalar_one())


def save_plan(
    engine: Engine,
    plan: EditPlan,
    base: int,
    who: str,
    note: str | None = None,
    now: datetime | None = None,
) -> SaveResult:
    """Write the plan's versions (source "editor", by ``who``) and an audit row for each, in
    one transaction; or, where a changed model has a version newer than ``base`` (the newest
    version id when the edit began), write nothing and return those conflicts, with the rates
    in force now and the newest id (``seen``) to save over them once the user has seen them."""
    if plan.errors:
        raise ValueError("an edit with bad cells is not saved: " + "; ".join(map(str, plan.errors)))
    now = now or datetime.now(UTC)
    result = SaveResult()
    with engine.begin() as conn:
        lock_prices(conn)
        newer = saved_since(conn, base)
        changed = [c for c in plan.changes if (c.provider, c.model) in newer]
        if changed:
            _, stored = _stored(conn, now)
            for c in changed:
                current = {
                    rate_label(r): rate_text(r) for r in stored.get((c.provider, c.model), [])
                }
                result.conflicts.append(Conflict(c.provider, c.model, current))
            result.seen = newest_version(conn)
            conn.rollback()
            return result
        for change in plan.changes:
            result.saved.append((change, _write(conn, change, who, note)))
    return result


def saved_since(conn: Connection, base: int) -> set[Key]:
    """The models with a version newer than ``base``."""
    query = select(price_versions.c.provider, price_versions.c.model).where(
        price_versions.c.id > base
    )
    return {(p, m) for p, m in conn.execute(query.distinct())}


def _write(conn: Connection, change: ModelChange, who: str, note: str | None) -> int | None:
    """One change: its version (or only its pattern, for an alias) and its audit row."""
    version = None
    after: dict[str, Any] = {}
    if change.writes_version:
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
        after = {
            "version_id": version,
            "effective_from": change.effective_from.isoformat(),
            "rates": rate_json(change.after),
        }
    if change.pattern is not None:
        add_pattern(conn, change.provider, change.pattern, change.model)
        after["pattern"] = change.pattern
        after["priced_as"] = change.model
    before = (
        {"rates": rate_json(change.before)} if change.before and change.writes_version else None
    )
    key = model_key(change.provider, change.model)
    record_change(conn, who, change.action, "price_versions", key, before, after, note=note)
    return version


def new_model_change(
    conn: Connection,
    provider: str,
    called: str,
    name: str,
    rates: Iterable[RateRow],
    effective_from: datetime,
) -> EditPlan:
    """A price for the unpriced calls of model ``called`` (the "add a price" form), priced as
    ``name``: the model itself, a pattern that matches it (``ft:gpt-4o-mini:*``), or another
    model's name. A name without a price yet gets a version of ``rates`` (and the mapping of
    ``called`` to it); a model priced already gets only the mapping, and no rates: its own
    rates are changed in the editor, where they are shown."""
    plan = EditPlan()
    provider, called, name = provider.strip(), called.strip(), (name.strip() or called.strip())
    chosen = list(rates)
    if not provider:
        plan.errors.append(CellError(None, "provider", "a provider is needed"))
    for column, text in (("provider", provider), ("model", name)):
        if why := unstorable(text):
            plan.errors.append(CellError(None, column, why))
    # the model's own name is never a pattern, whatever it holds: a model called "**x**" or
    # "a[b]" is priced as itself, and no other model that its name would match as a glob
    is_pattern = name.lower() != called.lower() and any(ch in name for ch in GLOB)
    if is_pattern and not fnmatchcase(called.lower(), name.lower()):
        message = f"the pattern {name!r} does not match {called!r}, whose calls are to be priced"
        plan.errors.append(CellError(None, "model", message))
    for r in chosen:
        try:
            check_rate(r)
        except ValueError as exc:
            plan.errors.append(CellError(None, "rate", f"{r.unit}: {exc}"))
    key = (provider, name)
    starts = _all_starts(conn).get(key, [])
    mapping = name if is_pattern else (called if called.lower() != name.lower() else None)
    if starts:  # priced already: map the calls to it, with its own rates
        if chosen:
            message = (
                f"{model_key(*key)} has a price already: leave the rates empty to price "
                f"{called}'s calls as {name}, or change {name}'s rates in the Edit tab"
            )
            plan.errors.append(CellError(None, "rate", message))
        if mapping is None:
            message = f"{model_key(*key)} has a price already: change its rates in the Edit tab"
            plan.errors.append(CellError(None, "model", message))
        if not plan.errors:
            alias = ModelChange(provider, name, (), (), effective_from, mapping, False)
            plan.changes.append(alias)
        return plan
    if not chosen:
        plan.errors.append(CellError(None, "rate", "give at least one rate"))
    if not plan.errors:
        change = ModelChange(provider, name, (), tuple(chosen), effective_from, mapping)
        plan.changes.append(change)
    return plan
