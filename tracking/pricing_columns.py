"""The cost engine column-wise: many calls of one model priced at once, to the same nano-dollar.

``tracking.pricing.price_usage`` prices one call on the host's thread; bulk loads (the demo's
millions of calls) price columns of counts instead. The rules are the engine's, read from the
same ``Plan`` (whole multiples of a common denominator), so integer arithmetic keeps it exact and
one half-even rounding at the end gives the scalar engine's cost, digit for digit (tested on
every catalogue version). numpy is loaded here, never by ``import tracking``: this module is for
the app's side (numpy comes with its pandas), not for the host.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC

import numpy as np

from tracking.pricing import INFORMATIONAL, TOKEN_PARTS, Plan, PriceBook, PriceVersion


@dataclass(frozen=True)
class UnitCounts:
    """One unit's counts for every call: ``values`` whole numbers of ``1/scale`` units (audio
    seconds to the tenth: ``scale=10``), ``present`` False where the call has no count (None).
    ``values`` are int64, or Python ints (dtype object) for counts beyond it."""

    values: np.ndarray
    present: np.ndarray | None = None
    scale: int = 1

    def mask(self) -> np.ndarray:
        return np.ones(len(self.values), dtype=bool) if self.present is None else self.present

    def take(self, rows: np.ndarray) -> UnitCounts:
        return UnitCounts(self.values[rows], self.mask()[rows], self.scale)


Usage = Mapping[str, UnitCounts]


def take(usage: Usage, rows: np.ndarray) -> dict[str, UnitCounts]:
    """The counts of the calls at ``rows`` (indices), unit by unit."""
    return {unit: counts.take(rows) for unit, counts in usage.items()}


def price_columns(
    version: PriceVersion, usage: Usage, n: int, batch: bool | np.ndarray = False
) -> tuple[np.ndarray, np.ndarray]:
    """Exact nano-dollar costs of ``n`` calls under ``version`` (int64) and which are priced
    (a unit with a count but no rate makes a call unpriced, as in ``price_usage``)."""
    if isinstance(batch, bool):
        return _price_plan(version.plan(batch), usage, n)
    nanos = np.zeros(n, dtype=np.int64)
    priced = np.zeros(n, dtype=bool)
    for variant in (False, True):
        rows = np.flatnonzero(batch == variant)
        if len(rows):
            plan = version.plan(variant)
            nanos[rows], priced[rows] = _price_plan(plan, take(usage, rows), len(rows))
    return nanos, priced


def _price_plan(plan: Plan, usage: Usage, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``price_usage``'s loop, one unit (a column) at a time instead of one call at a time."""
    tiers = plan.tiers
    raw = {u: _whole(np.where(c.mask(), c.values, 0)) for u, c in usage.items()}
    input_tokens = raw.get("input_tokens", np.zeros(n, dtype=np.int64))
    counts = dict(raw)
    if "input_tokens" in counts:
        for part in TOKEN_PARTS:
            if part in tiers and part in raw:
                counts["input_tokens"] = counts["input_tokens"] - raw[part]
    priced = np.ones(n, dtype=bool)
    terms: list[tuple[np.ndarray, list[int], np.ndarray, int]] = []  # count, multiples, tier, scale
    for unit, count in counts.items():
        active = (raw[unit] != 0) & (count != 0)
        rates = tiers.get(unit)
        if rates is None:
            if unit not in INFORMATIONAL and unit not in TOKEN_PARTS:
                priced &= ~active
            continue
        terms.append(
            (np.where(active, count, 0), *_tier_of(rates, input_tokens), usage[unit].scale)
        )
    if "requests" in tiers:  # a call is one request, unless it counts its requests
        counted = usage["requests"].mask() if "requests" in usage else np.zeros(n, dtype=bool)
        terms.append((np.where(counted, 0, 1), *_tier_of(tiers["requests"], input_tokens), 1))
    return _half_even_sum(terms, plan.denominator, n), priced


def _whole(values: np.ndarray) -> np.ndarray:
    return values if values.dtype == object else values.astype(np.int64)


def _tier_of(
    rates: tuple[tuple[int, int], ...], input_tokens: np.ndarray
) -> tuple[list[int], np.ndarray]:
    """Each call's tier (index into ``rates``): the highest whose threshold its input exceeds."""
    choice = np.full(len(input_tokens), len(rates) - 1)
    for i in reversed(range(len(rates))):
        above = rates[i][0]
        choice = np.where((above == 0) | (input_tokens > above), i, choice)
    return [multiple for _, multiple in rates], choice


def _half_even_sum(
    terms: list[tuple[np.ndarray, list[int], np.ndarray, int]], denominator: int, n: int
) -> np.ndarray:
    """Sum of count x multiple / (denominator x scale) per call, rounded half-even to whole
    nano-dollars; int64 arithmetic when the largest sum fits, Python ints otherwise."""
    common = math.lcm(denominator, *(denominator * scale for *_, scale in terms))
    largest = sum(
        int(np.abs(count).max(initial=0)) * max(multiples) * (common // (denominator * scale))
        for count, multiples, _, scale in terms
    )
    kind: type = np.int64 if largest < 2**62 else object
    total: np.ndarray = np.zeros(n, dtype=kind)
    for count, multiples, choice, scale in terms:
        factor = common // (denominator * scale)
        numerators = np.array([m * factor for m in multiples], dtype=kind)[choice]
        total = total + count.astype(kind) * numerators
    quotient, remainder = total // common, total % common  # divmod has no object loop
    twice = remainder * 2
    round_up = (twice > common) | ((twice == common) & (quotient % 2 == 1))
    return (quotient + round_up).astype(np.int64)


def quote_columns(
    book: PriceBook,
    provider: str,
    model: str,
    occurred_at: np.ndarray,
    usage: Usage,
    batch: bool | np.ndarray = False,
) -> tuple[np.ndarray, np.ndarray]:
    """``PriceBook.quote`` for calls of one model: (nano-dollars or -1 when unpriced, price
    version id or -1). ``occurred_at`` holds UTC times as numpy datetime64; each call is priced
    with the version in force at its time, so a price change inside the columns is kept."""
    n = len(occurred_at)
    nanos = np.full(n, -1, dtype=np.int64)
    versions = np.full(n, -1, dtype=np.int64)
    history = book.history(provider, model)
    if not history or not n:
        return nanos, versions
    starts = np.array(
        [v.effective_from.astimezone(UTC).replace(tzinfo=None) for v in history],
        dtype="datetime64[us]",
    )
    index = np.searchsorted(starts, occurred_at.astype("datetime64[us]"), side="right") - 1
    for i in np.unique(index[index >= 0]):
        rows = np.flatnonzero(index == i)
        rows_batch = batch if isinstance(batch, bool) else batch[rows]
        cost, priced = price_columns(history[i], take(usage, rows), len(rows), rows_batch)
        nanos[rows] = np.where(priced, cost, -1)
        versions[rows] = np.where(priced, history[i].id, -1)
    return nanos, versions
