"""The price table as the Pricing page reads it: the rates in force, a model's history, the
unpriced usage to fill in, calls priced with a superseded version, verification and the audit
log. Plain functions over a Connection (no Streamlit): tests and scripts call them as they are.

Rates are shown in the unit people quote them in (per 1M tokens, per minute of audio, per 1K
characters, per image, per request) and kept as stored: a rate is re-stored only when edited.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pandas as pd
from sqlalchemy import Connection, and_, exists, func, or_, select

from tracking.audit import record_change
from tracking.schema import audit_log, calls, daily_feature_model_rollups, price_versions, prices
from tracking.sqltypes import plain_decimal

STALE_DAYS_SETTING = "UNITWISE_PRICE_STALE_DAYS"
DEFAULT_STALE_DAYS = 30
SHOWN_DIGITS = 12  # decimals of a rate that only converts inexactly to the shown unit

# the unit people quote a rate in: (how many units, how the page says it)
_QUOTED = {
    "audio_seconds": (60, "per minute of audio"),
    "characters": (1_000, "per 1K characters"),
    "images": (1, "per image"),
    "requests": (1, "per request"),
}
STANDARD_UNITS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "audio_seconds",
    "characters",
    "images",
    "requests",
)
VARIANTS = ("standard", "batch")


def stale_days() -> int:
    """Days after which a price not verified is flagged (``UNITWISE_PRICE_STALE_DAYS``)."""
    text = os.environ.get(STALE_DAYS_SETTING, "").strip()
    if not text:
        return DEFAULT_STALE_DAYS
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"{STALE_DAYS_SETTING}={text!r}: give a whole number of days, 1 or more")
    return int(text)


def quoted_per(unit: str, stored_per: int | None = None) -> tuple[int, str]:
    """How many ``unit`` a shown rate is for, and its words: tokens per 1M, audio per minute,
    ...; another unit keeps the ``per`` it is stored with ("per 1K web searches")."""
    if unit.endswith("_tokens"):
        return 1_000_000, "per 1M tokens"
    if unit in _QUOTED:
        return _QUOTED[unit]
    per = stored_per or 1
    name = unit.replace("_", " ")
    if per == 1:
        return 1, f"per {name.removesuffix('s')}"
    count = f"{per // 1000:,}K" if per % 1000 == 0 else f"{per:,}"
    return per, f"per {count} {name}"


def shown_rate(rate: Decimal, per: int, unit: str) -> str:
    """A stored rate (dollars per ``per`` units) as decimal text in the quoted unit: exact
    where the conversion is (nearly always), else rounded to ``SHOWN_DIGITS`` decimals."""
    quoted, _ = quoted_per(unit, per)
    value = Fraction(Decimal(rate)) * quoted / per
    exact = Decimal(value.numerator) / Decimal(value.denominator)
    if Fraction(exact) != value:
        exact = exact.quantize(Decimal(1).scaleb(-SHOWN_DIGITS))
    return plain_decimal(exact)


def model_key(provider: str, model: str) -> str:
    """The audit log's key of a priced model."""
    return f"{provider}/{model}"


@dataclass(frozen=True)
class Version:
    id: int
    provider: str
    model: str
    effective_from: datetime
    source: str
    note: str | None
    created_at: datetime
    created_by: str | None


def _versions(conn: Connection, *where: Any) -> list[Version]:
    query = select(
        price_versions.c.id,
        price_versions.c.provider,
        price_versions.c.model,
        price_versions.c.effective_from,
        price_versions.c.source,
        price_versions.c.note,
        price_versions.c.created_at,
        price_versions.c.created_by,
    ).where(*where)
    return [Version(*row) for row in conn.execute(query.order_by(price_versions.c.effective_from))]


def versions_in_force(conn: Connection, now: datetime) -> dict[tuple[str, str], Version]:
    """Each priced model's version in force at ``now`` (models priced only from later on are
    left out: nothing is priced with them yet)."""
    found: dict[tuple[str, str], Version] = {}
    for version in _versions(conn, price_versions.c.effective_from <= now):
        found[(version.provider, version.model)] = version  # oldest first: the last one wins
    return found


def scheduled_versions(conn: Connection, now: datetime) -> list[Version]:
    """Versions saved to take effect later (a price change announced for a date), soonest first."""
    return _versions(conn, price_versions.c.effective_from > now)


def rates_of(conn: Connection, version_ids: Iterable[int]) -> dict[int, list[Any]]:
    """The rate rows of the given versions, by version id."""
    ids = list(version_ids)
    found: dict[int, list[Any]] = {i: [] for i in ids}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        query = select(prices).where(prices.c.version_id.in_(chunk))
        for row in conn.execute(
            query.order_by(prices.c.unit, prices.c.variant, prices.c.tier_above)
        ):
            found[row.version_id].append(row)
    return found


def last_verified(conn: Connection) -> dict[str, datetime]:
    """When each model's price was last marked verified on the page (from the audit log)."""
    query = (
        select(audit_log.c.key, func.max(audit_log.c.at))
        .where(audit_log.c.action == "verify", audit_log.c.table_name == "price_versions")
        .group_by(audit_log.c.key)
    )
    return {key: _utc(at) for key, at in conn.execute(query)}


def _utc(at: Any) -> datetime:
    # func.max() loses the column's type: SQLite hands back text, PostgreSQL an aware datetime
    value = datetime.fromisoformat(at) if isinstance(at, str) else at
    return value if value.tzinfo else value.replace(tzinfo=UTC)


PRICE_COLUMNS = [
    "provider",
    "model",
    "unit",
    "variant",
    "tier_above",
    "rate",
    "per",
    "effective_from",
    "source",
    "set_by",
    "verified",
    "stale",
    "version_id",
]


def prices_in_force(conn: Connection, now: datetime, stale_after: int) -> pd.DataFrame:
    """One row per rate in force now: provider, model, unit, variant, tier, the rate as decimal
    text in its quoted unit, the unit's words, the version's date, source and author, when it
    was last verified (its creation, or a later "mark verified") and whether that is older
    than ``stale_after`` days."""
    versions = versions_in_force(conn, now)
    rates = rates_of(conn, (v.id for v in versions.values()))
    verified = last_verified(conn)
    stale_before = now - timedelta(days=stale_after)
    rows = []
    for (provider, model), version in sorted(versions.items()):
        seen = max(version.created_at, verified.get(model_key(provider, model), version.created_at))
        for rate in rates[version.id]:
            _, words = quoted_per(rate.unit, rate.per)
            rows.append(
                (
                    provider,
                    model,
                    rate.unit,
                    rate.variant,
                    int(rate.tier_above),
                    shown_rate(rate.rate, rate.per, rate.unit),
                    words,
                    version.effective_from,
                    version.source,
                    version.created_by or version.source,
                    seen,
                    seen < stale_before,
                    version.id,
                )
            )
    return pd.DataFrame(rows, columns=PRICE_COLUMNS)


def usual_pers(conn: Connection) -> dict[str, int]:
    """The ``per`` each unit is most often stored with (the catalogue's web searches per 1,000):
    what a new rate of that unit is quoted per."""
    count = func.count()
    query = select(prices.c.unit, prices.c.per, count).group_by(prices.c.unit, prices.c.per)
    found: dict[str, tuple[int, int]] = {}
    for unit, per, n in conn.execute(query):
        if unit not in found or n > found[unit][1]:
            found[unit] = (int(per), int(n))
    return {unit: per for unit, (per, _) in found.items()}


def known_units(conn: Connection) -> list[str]:
    """The units a price row may name: the standard ones and every unit the table already has."""
    stored = {unit for (unit,) in conn.execute(select(prices.c.unit).distinct())}
    return [*STANDARD_UNITS, *sorted(stored - set(STANDARD_UNITS))]


@dataclass(frozen=True)
class HistoryEntry:
    version: Version
    rates: dict[str, str]  # "input_tokens" (+ " batch", " >200000") -> shown rate with its unit
    changed: str  # what this version changed from the one before, in words


def rate_label(row: Any) -> str:
    """A rate row's name: its unit, variant and tier ('input_tokens batch >200,000')."""
    label = row.unit
    if row.variant != "standard":
        label += f" {row.variant}"
    if row.tier_above:
        label += f" >{int(row.tier_above):,}"
    return label


def rate_text(row: Any) -> str:
    """A stored rate as the page shows it: '$2.5 per 1M tokens'."""
    return f"${shown_rate(row.rate, row.per, row.unit)} {quoted_per(row.unit, row.per)[1]}"


def describe_change(before: dict[str, str], after: dict[str, str]) -> str:
    """What a version changed, in words: "input_tokens $2.5 → $2; added images"."""
    if not before:
        return "first price" if after else "no rates"
    if not after:
        return "retired: no price from this date"
    parts = []
    for label in sorted(before.keys() | after.keys()):
        old, new = before.get(label), after.get(label)
        if old == new:
            continue
        if old is None:
            parts.append(f"added {label} {new}")
        elif new is None:
            parts.append(f"removed {label}")
        else:
            parts.append(f"{label} {old.split(' ')[0]} → {new.split(' ')[0]}")
    return "; ".join(parts) or "same rates"


def model_history(conn: Connection, provider: str, model: str) -> list[HistoryEntry]:
    """Every version of one priced model, oldest first, with its rates and what it changed."""
    versions = _versions(
        conn, price_versions.c.provider == provider, price_versions.c.model == model
    )
    rates = rates_of(conn, (v.id for v in versions))
    entries: list[HistoryEntry] = []
    before: dict[str, str] = {}
    for version in versions:
        after = {rate_label(r): rate_text(r) for r in rates[version.id]}
        entries.append(HistoryEntry(version, after, describe_change(before, after)))
        before = after
    return entries


def history_points(conn: Connection, provider: str, model: str, now: datetime) -> pd.DataFrame:
    """Each unit's shown rate at each version (to draw as steps), carried on to ``now``; a unit
    a version dropped has no point there (its step ends)."""
    versions = _versions(
        conn, price_versions.c.provider == provider, price_versions.c.model == model
    )
    rates = rates_of(conn, (v.id for v in versions))
    rows = []
    for version in versions:
        for r in rates[version.id]:
            rows.append(
                (version.effective_from, rate_label(r), float(shown_rate(r.rate, r.per, r.unit)))
            )
    frame = pd.DataFrame(rows, columns=["from", "rate_of", "dollars"])
    if versions and versions[-1].effective_from < now:
        last = frame[frame["from"] == versions[-1].effective_from].assign(**{"from": now})
        frame = pd.concat([frame, last], ignore_index=True)
    return frame


def unpriced_usage(conn: Connection) -> pd.DataFrame:
    """The models that have calls of unknown cost: provider, model, calls, first and last day
    (from the rollups, so it costs the same on a large store), most such calls first."""
    r = daily_feature_model_rollups.c
    count = func.sum(r.unpriced_calls)
    query = (
        select(r.provider, r.model, count, func.min(r.day), func.max(r.day))
        .where(r.unpriced_calls > 0)
        .group_by(r.provider, r.model)
        .order_by(count.desc(), r.provider, r.model)
    )
    rows = [(p, m, int(n), first, last) for p, m, n, first, last in conn.execute(query)]
    return pd.DataFrame(rows, columns=["provider", "model", "calls", "first_day", "last_day"])


def superseded_calls(conn: Connection, since: datetime) -> pd.DataFrame:
    """Calls since ``since`` priced with a version that a newer one of the same model replaced
    before the call's time: those a running tracker priced in the minute before its price cache
    saw an edit (or any edited afterwards with a backdated version). A reprice of their models
    from that date puts them right, because it compares each call's version id with the
    version in force at its time."""
    used = price_versions.alias("used")
    newer = price_versions.alias("newer")
    replaced = exists().where(
        newer.c.provider == used.c.provider,
        newer.c.model == used.c.model,
        newer.c.effective_from > used.c.effective_from,
        newer.c.effective_from <= calls.c.occurred_at,
    )
    query = (
        select(calls.c.provider, calls.c.model, func.count(), func.min(calls.c.occurred_at))
        .join(used, used.c.id == calls.c.price_version_id)
        .where(calls.c.occurred_at >= since, replaced)
        .group_by(calls.c.provider, calls.c.model)
        .order_by(calls.c.provider, calls.c.model)
    )
    rows = [(p, m, int(n), _utc(first)) for p, m, n, first in conn.execute(query)]
    return pd.DataFrame(rows, columns=["provider", "model", "calls", "first"])


CACHE_MINUTE = timedelta(minutes=1)  # how long a running tracker prices with what it loaded


def recent_edit_start(conn: Connection, now: datetime, days: int = 2) -> datetime | None:
    """Where to look for calls a tracker priced with a version just replaced: from a minute
    before the earliest save of the last ``days`` (so that the scan stays small on a large
    store; a version backdated further is the past a reprice is chosen for)."""
    query = select(func.min(price_versions.c.created_at)).where(
        price_versions.c.created_at >= now - timedelta(days=days)
    )
    found = conn.execute(query).scalar()
    return None if found is None else _utc(found) - CACHE_MINUTE


def mark_verified(
    conn: Connection, models: Iterable[tuple[str, str]], who: str, now: datetime, note: str | None
) -> int:
    """Record that ``who`` checked these models' prices in force against the provider's list
    (an audit row each; the prices stay as they are); returns how many were marked."""
    versions = versions_in_force(conn, now)
    before = last_verified(conn)
    marked = 0
    for provider, model in models:
        version = versions.get((provider, model))
        if version is None:
            raise ValueError(f"{provider}/{model} has no price in force to verify")
        key = model_key(provider, model)
        previous = before.get(key, version.created_at)
        record_change(
            conn,
            who,
            "verify",
            "price_versions",
            key,
            {"verified_at": previous.isoformat(), "version_id": version.id},
            {"verified_at": now.isoformat(), "version_id": version.id},
            note=note,
        )
        marked += 1
    return marked


AUDIT_COLUMNS = ["at", "who", "action", "table", "key", "before", "after", "note"]


def audit_entries(
    conn: Connection,
    actions: Iterable[str] = (),
    who: str = "",
    text: str = "",
    limit: int = 1_000,
) -> pd.DataFrame:
    """The newest audit rows (at most ``limit``), of the given actions, by a ``who`` containing
    that text, and whose key or note contains ``text``; before/after as compact JSON text."""
    a = audit_log.c
    where: list[Any] = []
    chosen = list(actions)
    if chosen:
        where.append(a.action.in_(chosen))
    if who.strip():
        where.append(func.lower(a.who).contains(who.strip().lower(), autoescape=True))
    if text.strip():
        needle = text.strip().lower()
        where.append(
            or_(
                func.lower(a.key).contains(needle, autoescape=True),
                and_(a.note.is_not(None), func.lower(a.note).contains(needle, autoescape=True)),
            )
        )
    query = (
        select(a.at, a.who, a.action, a.table_name, a.key, a.before, a.after, a.note)
        .where(*where)
        .order_by(a.id.desc())
        .limit(limit)
    )
    rows = [
        (at, who_, action, table, key, _json(before), _json(after), note)
        for at, who_, action, table, key, before, after, note in conn.execute(query)
    ]
    return pd.DataFrame(rows, columns=AUDIT_COLUMNS)


def audit_actions(conn: Connection) -> list[str]:
    return [
        a
        for (a,) in conn.execute(select(audit_log.c.action).distinct().order_by(audit_log.c.action))
    ]


def _json(value: Any) -> str:
    return "" if value is None else json.dumps(value, sort_keys=True, ensure_ascii=False)
