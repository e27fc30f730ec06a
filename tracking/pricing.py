"""The cost engine: usage times the price version in force at the call's time, in exact decimals.

Token semantics follow DESIGN.md: ``input_tokens`` is all input and the cache tokens are parts of
it; ``output_tokens`` is all output, reasoning included. A cache part that has no rate of its own
is billed at the input rate (it stays inside ``input_tokens``). A tier (``tier_above``) applies to
all of a call's tokens of that unit when the call's input tokens exceed it. A batch call uses the
``batch`` variant of a unit where one exists, else the standard rate.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from fnmatch import fnmatchcase
from fractions import Fraction
from typing import NamedTuple

from sqlalchemy import Connection, select

from tracking.events import CallEvent
from tracking.schema import model_patterns, price_versions, prices
from tracking.sqltypes import NANOS_PER_DOLLAR, from_nanos

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

    def plan(self, batch: bool) -> Plan:
        """This version's rates for a standard or a batch call, computed once (versions are not
        changed once loaded), as whole numbers: see ``Plan``."""
        plans = self.__dict__.setdefault("_plans", {})
        found = plans.get(batch)
        if found is None:
            found = plans[batch] = Plan.of(self, batch)
        return found


@dataclass(frozen=True)
class Plan:
    """A version's rates as whole multiples of ``1/denominator`` nano-dollar per unit, so that a
    call is priced in ints, exactly, with one rounding at the end: the Decimal arithmetic and
    the lookups it replaces cost 2 µs of the host's thread per call (bench/README.md, overhead).

    ``tiers`` maps each priced unit to its (tier_above, multiple) pairs, highest tier first; a
    batch call takes a unit's batch rates where it has them, else its standard ones.
    """

    denominator: int
    tiers: dict[str, tuple[tuple[int, int], ...]]
    parts: tuple[str, ...] = ()  # the cache parts (TOKEN_PARTS) priced on their own

    @classmethod
    def of(cls, version: PriceVersion, batch: bool) -> Plan:
        variants = ("batch", "standard") if batch else ("standard",)
        chosen: dict[str, list[Rate]] = {}
        for unit, _ in version.rates:
            found = next((r for v in variants if (r := version.rates.get((unit, v)))), None)
            if found:
                chosen[unit] = found
        exact = {
            unit: [(r.tier_above, Fraction(r.rate) * NANOS_PER_DOLLAR / r.per) for r in rates]
            for unit, rates in chosen.items()
        }
        denominator = math.lcm(*(f.denominator for pairs in exact.values() for _, f in pairs))
        tiers = {
            unit: tuple((above, f.numerator * (denominator // f.denominator)) for above, f in pairs)
            for unit, pairs in exact.items()
        }
        return cls(denominator, tiers, tuple(part for part in TOKEN_PARTS if part in tiers))


class Quote(NamedTuple):
    """The engine's answer: cost (None when unpriced) and the version that priced it (a named
    tuple: made once per call on the host's thread, it costs a third of a frozen dataclass)."""

    cost: Decimal | None
    version_id: int | None


UNPRICED = Quote(None, None)


def price_usage(
    version: PriceVersion, usage: Mapping[str, int | float | Decimal | None], batch: bool = False
) -> Decimal | None:
    """The exact cost of ``usage`` under ``version``, or None if it reports a unit with no rate
    (see ``price_nanos``)."""
    nanos = price_nanos(version, usage, batch)
    return None if nanos is None else from_nanos(nanos)


def price_nanos(
    version: PriceVersion, usage: Mapping[str, int | float | Decimal | None], batch: bool = False
) -> int | None:
    """The exact cost of ``usage`` under ``version`` in whole nano-dollars, or None if it
    reports a unit with no rate.

    Cache parts come out of ``input_tokens`` only where they are priced on their own (for this
    variant, standard or batch); otherwise they are billed inside it. A fractional count (audio
    seconds) counts as the decimal of its shortest repr, never as a binary float.
    """
    plan = version.plan(batch)
    tiers = plan.tiers
    input_tokens = int(usage.get("input_tokens") or 0)
    total: int | Fraction = 0  # in 1/denominator nano-dollars
    for unit, value in usage.items():
        if not value:
            continue
        count = value if type(value) is int else _exact(value)
        if unit == "input_tokens":
            for part in plan.parts:
                count -= _exact(usage.get(part) or 0)
            if not count:
                continue
        rates = tiers.get(unit)
        if rates is None:
            if unit in INFORMATIONAL or unit in TOKEN_PARTS:
                continue
            return None
        above, multiple = rates[0]  # the highest tier: a call's only one, mostly
        if above and input_tokens <= above:
            multiple = _multiple(rates, input_tokens)
        total += count * multiple
    if "requests" in tiers and usage.get("requests") is None:
        total += _multiple(tiers["requests"], input_tokens)  # a call is one request
    return _half_even(total, plan.denominator)


def _exact(value: int | float | Decimal) -> int | Fraction:
    """A count as an exact number: ints stay ints (the common, cheap case)."""
    if isinstance(value, int):
        return value
    if isinstance(value, float):  # the decimal of its shortest repr, parsed by Decimal in C
        return Fraction(*Decimal(repr(value)).as_integer_ratio())
    return Fraction(value)


def _multiple(rates: tuple[tuple[int, int], ...], input_tokens: int) -> int:
    """The rate of the highest tier the call's input tokens exceed (``0``: every call)."""
    for above, multiple in rates:
        if above == 0 or input_tokens > above:
            return multiple
    return rates[-1][1]


def _half_even(total: int | Fraction, denominator: int) -> int:
    """``total / denominator`` rounded to a whole number, ties to even (as Decimal's quantize)."""
    if isinstance(total, Fraction):  # in ints: Fraction's own division and round cost 2 µs
        total, denominator = total.numerator, total.denominator * denominator
    quotient, remainder = divmod(total, denominator)
    if 2 * remainder > denominator or (2 * remainder == denominator and quotient % 2):
        quotient += 1
    return quotient


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
        # exact names match whatever their case, as patterns do (resolve() lowers the name)
        self._exact: dict[tuple[str, str], str] = {(p, m.lower()): m for p, m in self._versions}
        self._globs: dict[str, list[tuple[str, str]]] = {}
        for provider, pattern, model, _position in sorted(patterns, key=lambda p: p[3]):
            if (provider, model) not in self._versions:  # its prices deleted: the call unpriced
                continue
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

    def history(self, provider: str, model: str) -> list[PriceVersion]:
        """Every version of the priced model that a call's model name stands for, oldest first
        (what column-wise pricing searches instead of one ``version_at`` per call)."""
        canonical = self.resolve(provider, model)
        return [] if canonical is None else self._versions[(provider, canonical)]

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

    def quote_nanos(
        self,
        provider: str,
        model: str,
        at: datetime,
        usage: Mapping[str, int | float | Decimal | None],
        batch: bool = False,
    ) -> tuple[int | None, int | None]:
        """``quote`` in whole nano-dollars: (cost or None when unpriced, version or None), for
        repricing many stored calls without a Decimal per call."""
        version = self.version_at(provider, model, at)
        if version is None:
            return None, None
        nanos = price_nanos(version, usage, batch)
        return (nanos, version.id) if nanos is not None else (None, None)


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


def price_event(book: PriceBook, event: CallEvent) -> None:
    """Price an event with the book (a provider-reported cost is kept as it is)."""
    if event.cost_source == "provider":
        event.priced = True
        return
    # in nanos, as repricing does: no Quote nor price_usage layer on the host's thread
    nanos, event.price_version_id = book.quote_nanos(
        event.provider, event.model, event.occurred_at, event.usage(), event.batch
    )
    event.cost_usd = None if nanos is None else from_nanos(nanos)
    event.cost_source = None if nanos is None else "computed"
    event.priced = True
