"""The cost engine: usage times the price version in force at the call's time, in exact decimals.

Token semantics follow DESIGN.md: ``input_tokens`` is all input and the cache tokens are parts of
it; ``output_tokens`` is all output, reasoning included. A cache part that has no rate of its own
is billed at the input rate (it stays inside ``input_tokens``). A tier (``tier_above``) applies to
all of a call's tokens of that unit when the call's input tokens exceed it. A batch call uses the
``batch`` variant of a unit where one exists, else the standard rate.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from fnmatch import fnmatchcase

from sqlalchemy import Connection, select

from tracking.schema import model_patterns, price_versions, prices
from tracking.sqltypes import NANO

TOKEN_PARTS = ("cache_read_tokens", "cache_write_tokens")  # parts of input_tokens
INFORMATIONAL = frozenset({"reasoning_tokens", "requests"})  # never make a call unpriced


@dataclass(frozen=True)
class Rate:
    rate: Decimal
    per: int
    tier_above: int = 0


@dataclass
class PriceVersion:
    id: int
    provider: str
    model: str
    effective_from: datetime
    # (unit, variant) -> tiers, highest ``tier_above`` first
    rates: dict[tuple[str, str], list[Rate]] = field(default_factory=dict)

    def units(self) -> frozenset[str]:
        """The units this version prices (computed once: versions are not changed once loaded)."""
        found = self.__dict__.get("_units")
        if found is None:
            found = self.__dict__["_units"] = frozenset(unit for unit, _ in self.rates)
        return found

    def rate_for(self, unit: str, input_tokens: int, batch: bool) -> Rate | None:
        tiers = None
        if batch:
            tiers = self.rates.get((unit, "batch"))
        if tiers is None:
            tiers = self.rates.get((unit, "standard"))
        if not tiers:
            return None
        for tier in tiers:
            if tier.tier_above == 0 or input_tokens > tier.tier_above:
                return tier
        return tiers[-1]


@dataclass(frozen=True)
class Quote:
    """The engine's answer: cost (None when unpriced) and the version that priced it."""

    cost: Decimal | None
    version_id: int | None


UNPRICED = Quote(None, None)


def billable_counts(
    usage: Mapping[str, int | float | Decimal | None], priced_units: frozenset[str]
) -> dict[str, int | Decimal]:
    """Counts per priced unit, with cache parts taken out of input only when priced on their own.

    Whole counts stay ints (exact, and cheaper than Decimals on this per-call path); a fractional
    count (audio seconds) becomes the Decimal of its shortest repr, never a binary float.
    """
    counts: dict[str, int | Decimal] = {}
    for unit, value in usage.items():
        if value is None:
            continue
        counts[unit] = value if isinstance(value, int | Decimal) else Decimal(repr(value))
    if "input_tokens" in counts:
        for part in TOKEN_PARTS:
            if part in priced_units and part in counts:
                counts["input_tokens"] -= counts[part]
    if "requests" in priced_units and "requests" not in counts:
        counts["requests"] = 1  # a call is one request
    return counts


def price_usage(
    version: PriceVersion, usage: Mapping[str, int | float | Decimal | None], batch: bool = False
) -> Decimal | None:
    """The exact cost of ``usage`` under ``version``, or None if it reports a unit with no rate."""
    priced = version.units()
    counts = billable_counts(usage, priced)
    input_tokens = int(usage.get("input_tokens") or 0)
    total = Decimal(0)
    for unit, count in counts.items():
        if count == 0:
            continue
        rate = version.rate_for(unit, input_tokens, batch)
        if rate is None:
            if unit in INFORMATIONAL or unit in TOKEN_PARTS:
                continue
            return None
        total += count * rate.rate / rate.per
    return total.quantize(NANO, rounding=ROUND_HALF_EVEN)


class PriceBook:
    """An in-memory copy of the store's prices, so pricing a call does no I/O."""

    def __init__(
        self,
        versions: Iterable[PriceVersion] = (),
        patterns: Iterable[tuple[str, str, str, int]] = (),
    ) -> None:
        self._versions: dict[tuple[str, str], list[PriceVersion]] = {}
        for version in versions:
            self._versions.setdefault((version.provider, version.model), []).append(version)
        for history in self._versions.values():
            history.sort(key=lambda v: v.effective_from)
        self._starts = {
            key: [v.effective_from for v in history] for key, history in self._versions.items()
        }
        self._exact: dict[tuple[str, str], str] = {key: key[1] for key in self._versions}
        self._globs: dict[str, list[tuple[str, str]]] = {}
        for provider, pattern, model, _position in sorted(patterns, key=lambda p: p[3]):
            pattern = pattern.lower()
            if any(ch in pattern for ch in "*?["):
                self._globs.setdefault(provider, []).append((pattern, model))
            else:
                self._exact.setdefault((provider, pattern), model)
        self._resolved: dict[tuple[str, str], str | None] = {}

    @property
    def empty(self) -> bool:
        return not self._versions

    def __len__(self) -> int:
        return sum(len(h) for h in self._versions.values())

    def resolve(self, provider: str, model: str) -> str | None:
        """The priced model that a call's model name stands for: exact names first, then globs."""
        key = (provider, model)
        if key in self._resolved:
            return self._resolved[key]
        name = model.lower()
        found = self._exact.get((provider, name))
        if found is None:
            for pattern, target in self._globs.get(provider, ()):
                if fnmatchcase(name, pattern):
                    found = target
                    break
        if len(self._resolved) < 100_000:
            self._resolved[key] = found
        return found

    def version_at(self, provider: str, model: str, at: datetime) -> PriceVersion | None:
        canonical = self.resolve(provider, model)
        if canonical is None:
            return None
        key = (provider, canonical)
        index = bisect.bisect_right(self._starts[key], at) - 1
        return self._versions[key][index] if index >= 0 else None

    def quote(
        self,
        provider: str,
        model: str,
        at: datetime,
        usage: Mapping[str, int | float | Decimal | None],
        batch: bool = False,
    ) -> Quote:
        version = self.version_at(provider, model, at)
        if version is None:
            return UNPRICED
        cost = price_usage(version, usage, batch)
        return Quote(cost, version.id) if cost is not None else UNPRICED


def load_price_book(conn: Connection) -> PriceBook:
    """Read every price version, rate and model pattern from the store."""
    versions: dict[int, PriceVersion] = {}
    for row in conn.execute(select(price_versions)):
        versions[row.id] = PriceVersion(row.id, row.provider, row.model, row.effective_from)
    for row in conn.execute(select(prices)):
        version = versions.get(row.version_id)
        if version is None:
            continue
        version.rates.setdefault((row.unit, row.variant), []).append(
            Rate(row.rate, int(row.per), int(row.tier_above))
        )
    for version in versions.values():
        for tiers in version.rates.values():
            tiers.sort(key=lambda r: r.tier_above, reverse=True)
    patterns = [
        (r.provider, r.pattern, r.model, r.position) for r in conn.execute(select(model_patterns))
    ]
    return PriceBook(versions.values(), patterns)
