"""The exact arithmetic the margin calculations share: nano-dollars, percents, days, months."""

from __future__ import annotations

import calendar
import math
from collections.abc import Iterator, Sequence
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


def _nanos(amount: Fraction | int) -> int:
    """Dollars, exact, to whole nano-dollars, ties to even (Fraction's round)."""
    return round(Fraction(amount) * NANOS_PER_DOLLAR)


def _pct(part: Number, whole: Number) -> Decimal | None:
    """``part / whole`` in percent, rounded half-even to 0.01 in one step; None when whole is 0."""
    if whole == 0:
        return None
    return Decimal(round(Fraction(part) * 10_000 / Fraction(whole))).scaleb(-2)


def _day_span(first: date, last: date) -> int:
    return (last - first).days + 1


def _overlap(a: date, b: date | None, start: date, end: date) -> tuple[date, date] | None:
    """The days of [a, b] (b None: open) inside [start, end], or None."""
    first, last = max(a, start), min(b or end, end)
    return (first, last) if first <= last else None


def _months(first: date, last: date) -> Iterator[tuple[tuple[int, int], int, int]]:
    """The calendar months [first, last] touches: ((year, month), days touched, month length)."""
    day = first
    while day <= last:
        length = calendar.monthrange(day.year, day.month)[1]
        stop = min(last, day.replace(day=length))
        yield (day.year, day.month), _day_span(day, stop), length
        day = stop + timedelta(days=1)


def _check_period(start: date, end: date) -> None:
    if end < start:
        raise ValueError(f"the period ends ({end}) before it starts ({start})")


def _allocate(total: int, weights: Sequence[int | Fraction]) -> list[int]:
    """Split ``total`` nano-dollars in proportion to ``weights`` into whole nano-dollars that sum
    to it exactly (largest remainder; ties to the earlier weight)."""
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
