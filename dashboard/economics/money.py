"""The exact arithmetic the margin calculations share: nano-dollars, percents, days, months."""

from __future__ import annotations

import calendar
import functools
import math
from collections.abc import Sequence
from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction

from tracking.sqltypes import NANOS_PER_DOLLAR

# Money is exact: every amount of the margin calculations is a whole number of nano-dollars (an
# int) while it is summed, or a Fraction before its one rounding (half-even, to the nano-dollar),
# and leaves as a Decimal of exponent -9. Percentages (discount, payment fee, margin targets,
# churn) are in percent: Decimal("2.9") is 2.9 %.

AVERAGE_MONTH_DAYS = Fraction(36525, 1200)  # 365.25 / 12 = 30.4375 days, exactly
CostRow = tuple[str | None, date, int, int]  # (user_id, day, cost in nano-dollars, unpriced calls)
Number = Decimal | int | Fraction


def _exact(value: Number | float) -> Fraction:
    """A number as an exact Fraction (a float as the decimal of its shortest repr)."""
    return Fraction(repr(value)) if isinstance(value, float) else Fraction(value)


def _round_div(numerator: int, denominator: int) -> int:
    """``numerator / denominator`` rounded half to even, in integers: what ``round`` of the
    Fraction gives, without building one (the margins do this for every customer)."""
    if denominator < 0:
        numerator, denominator = -numerator, -denominator
    quotient, remainder = divmod(numerator, denominator)
    twice = 2 * remainder
    if twice > denominator or (twice == denominator and quotient % 2):
        quotient += 1
    return quotient


def _nanos(amount: Fraction | int) -> int:
    """Dollars, exact, to whole nano-dollars, ties to even (Fraction's round)."""
    if isinstance(amount, int):
        return amount * NANOS_PER_DOLLAR
    if isinstance(amount, Fraction):
        return _round_div(amount.numerator * NANOS_PER_DOLLAR, amount.denominator)
    return round(Fraction(amount) * NANOS_PER_DOLLAR)


def _pct(part: Number, whole: Number) -> Decimal | None:
    """``part / whole`` in percent, rounded half-even to 0.01 in one step; None when whole is 0."""
    if whole == 0:
        return None
    if isinstance(part, int) and isinstance(whole, int):
        return Decimal(_round_div(part * 10_000, whole)).scaleb(-2)
    return Decimal(round(Fraction(part) * 10_000 / Fraction(whole))).scaleb(-2)


def _day_span(first: date, last: date) -> int:
    return (last - first).days + 1


def _overlap(a: date, b: date | None, start: date, end: date) -> tuple[date, date] | None:
    """The days of [a, b] (b None: open) inside [start, end], or None."""
    first, last = max(a, start), min(b or end, end)
    return (first, last) if first <= last else None


@functools.lru_cache(maxsize=4096)
def _months(first: date, last: date) -> tuple[tuple[tuple[int, int], int, int], ...]:
    """The calendar months [first, last] touches: ((year, month), days touched, month length).
    Cached: most customers' terms cover the same days of a period."""
    months = []
    day = first
    while day <= last:
        length = calendar.monthrange(day.year, day.month)[1]
        stop = min(last, day.replace(day=length))
        months.append(((day.year, day.month), _day_span(day, stop), length))
        day = stop + timedelta(days=1)
    return tuple(months)


def _check_period(start: date, end: date) -> None:
    if end < start:
        raise ValueError(f"the period ends ({end}) before it starts ({start})")


def _allocate(total: int, weights: Sequence[int | Fraction]) -> list[int]:
    """Split ``total`` nano-dollars in proportion to ``weights`` into whole nano-dollars that sum
    to it exactly (largest remainder; ties to the earlier weight)."""
    if len(weights) == 1 and (total == 0 or weights[0] != 0):
        return [total]  # most customers: one segment takes it all
    if all(isinstance(w, int) and w >= 0 for w in weights):
        return _allocate_ints(total, [int(w) for w in weights])
    whole = sum(weights, Fraction(0))
    if whole == 0:
        if total:
            raise ValueError("cannot split a non-zero amount over zero weights")
        return [0] * len(weights)
    shares = [Fraction(total) * w / whole for w in weights]
    parts = [math.floor(s) for s in shares]
    left = total - sum(parts)
    for i in sorted(range(len(parts)), key=lambda i: (parts[i] - shares[i], i))[:left]:
        parts[i] += 1
    return parts


def _allocate_ints(total: int, weights: list[int]) -> list[int]:
    """``_allocate`` for whole, non-negative weights, in integers: the same parts."""
    whole = sum(weights)
    if whole == 0:
        if total:
            raise ValueError("cannot split a non-zero amount over zero weights")
        return [0] * len(weights)
    split = [divmod(total * w, whole) for w in weights]  # floor of each share, and what is left
    parts = [floor for floor, _ in split]
    left = total - sum(parts)
    # the largest fractional parts first (ties to the earlier weight), as ``_allocate`` orders
    for i in sorted(range(len(parts)), key=lambda i: (-split[i][1], i))[:left]:
        parts[i] += 1
    return parts
