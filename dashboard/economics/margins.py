"""Each customer's margin over a period, and the distribution of those margins."""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, Context, Decimal
from fractions import Fraction

from dashboard.economics.accounts import Plan, RevenueLine, Term
from dashboard.economics.attribution import (
    CostAttribution,
    Customers,
    _by_customer,
    _Customer,
)
from dashboard.economics.money import (
    Number,
    _allocate,
    _check_period,
    _day_span,
    _exact,
    _months,
    _overlap,
    _pct,
    _round_div,
)
from dashboard.economics.revenue import _line_nanos, _term_pieces
from tracking.sqltypes import NANOS_PER_DOLLAR, from_nanos, to_nanos

MONTH_UNITS = math.lcm(28, 29, 30, 31)  # a month of any length is a whole number of these

# --- per-customer margins --------------------------------------------------------------------


@dataclass(frozen=True)
class CustomerMargin:
    """A customer's margin over a period (see ``customer_margins``)."""

    customer_id: str
    name: str
    plan: str | None  # the plan of the latest term active in the period
    revenue: Decimal
    ai_cost: Decimal
    fees: Decimal
    infra: Decimal
    margin: Decimal
    margin_pct: Decimal | None  # margin / revenue x 100 to 0.01; None when revenue is 0
    unpriced_calls: int
    active_days: int  # days of the period on which a term of the customer is active


class _OffTerm:
    """The segment key of a customer's days outside every term (revenue lines only)."""

    def __repr__(self) -> str:
        return "OFF_TERM"


OFF_TERM = _OffTerm()
SegmentKey = str | None | _OffTerm


@dataclass
class _Segment:
    """The part of a customer's period on one plan (or outside every term), in nano-dollars."""

    plan_revenue: int = 0
    line_revenue: int = 0
    ai_cost: int = 0
    unpriced_calls: int = 0
    fees: int = 0
    infra: int = 0
    active_days: int = 0
    # days owned / month length, summed over months; seats x days active / month length, over
    # its terms: both kept in whole 1/MONTH_UNITS of a month (every month length divides it),
    # so that summing them is integer addition, not a Fraction per customer-month
    customer_month_units: int = 0
    seat_month_units: int = 0
    on_plan: bool = False  # a term on this plan is active in the period

    @property
    def customer_months(self) -> Fraction:
        return Fraction(self.customer_month_units, MONTH_UNITS)

    @property
    def seat_months(self) -> Fraction:
        return Fraction(self.seat_month_units, MONTH_UNITS)

    @property
    def revenue(self) -> int:
        return self.plan_revenue + self.line_revenue

    @property
    def margin(self) -> int:
        return self.revenue - self.ai_cost - self.fees - self.infra


def summed(segments: Iterable[_Segment]) -> _Segment:
    """The segments' figures added up, in one pass (a customer's, or a plan's customers')."""
    total = _Segment()
    for s in segments:
        total.plan_revenue += s.plan_revenue
        total.line_revenue += s.line_revenue
        total.ai_cost += s.ai_cost
        total.unpriced_calls += s.unpriced_calls
        total.fees += s.fees
        total.infra += s.infra
        total.active_days += s.active_days
        total.customer_month_units += s.customer_month_units
        total.seat_month_units += s.seat_month_units
    return total


@dataclass
class _Book:
    customer_id: str
    name: str
    plan: str | None
    segments: dict[SegmentKey, _Segment]
    active_days: int
    has_lines: bool


def customer_books(
    terms: Iterable[Term],
    plans: Mapping[str, Plan],
    attribution: CostAttribution,
    start: date,
    end: date,
    revenue_lines: Iterable[RevenueLine],
    fee_pct: Number,
    infra_per_month: Number,
    customers: Customers | None = None,
) -> list[_Book]:
    """Every customer's figures over the period, by segment (what ``customer_margins`` and
    ``plan_margins`` both start from: compute it once for both). Customer-level figures follow the
    rules of ``customer_margins``; a plan's share of a customer's revenue line, fee and infra
    is split by largest remainder, so the segments sum to the customer to the nano-dollar.
    ``customers``: ``customers_of`` the same terms and period, when the caller has it."""
    _check_period(start, end)
    if (attribution.start, attribution.end) != (start, end):
        raise ValueError(
            f"the costs were attributed for {attribution.start}..{attribution.end},"
            f" not for {start}..{end}"
        )
    fee = _exact(fee_pct) / 100
    infra = _exact(infra_per_month)
    infra_nanos = infra.numerator * NANOS_PER_DOLLAR
    grouped = _by_customer(terms)
    lines: dict[str, list[RevenueLine]] = {}
    for line in revenue_lines:
        lines.setdefault(line.customer_id, []).append(line)
    books = []
    for customer_id in sorted(set(grouped) | set(lines)):
        mine = grouped.get(customer_id, [])
        known = customers.get(customer_id) if customers is not None else None
        customer = known if known is not None else _Customer(mine, start, end)
        segments: dict[SegmentKey, _Segment] = {}
        active_terms = []
        for index, term in enumerate(mine):
            pieces = _term_pieces(term, plans, start, end)
            if not pieces:
                continue
            active_terms.append((term.start, index))
            segment = segments.get(term.plan)
            if segment is None:
                segment = segments[term.plan] = _Segment()
            segment.on_plan = True
            for _month, days, length, nanos in pieces:
                segment.plan_revenue += nanos
                segment.seat_month_units += term.seats * days * (MONTH_UNITS // length)
        # the days each segment owns, by month: customer-months, active days, infra
        owned = [span for span in customer.spans if span.term is not None]
        if len(owned) == 1:  # most customers: one term owns its days, no split by month
            key: SegmentKey = mine[owned[0].term].plan  # type: ignore[index]
            units, days, infra_part = _owned_days(
                owned[0].first, owned[0].last, infra_nanos, infra.denominator
            )
            segments[key].customer_month_units += units
            segments[key].active_days += days
            segments[key].infra += infra_part
            owned = []
        month_days: dict[tuple[int, int], dict[SegmentKey, int]] = {}
        month_length: dict[tuple[int, int], int] = {}
        for span in owned:
            key = mine[span.term].plan  # type: ignore[index]
            for month, days, length in _months(span.first, span.last):
                month_length[month] = length
                by_key = month_days.setdefault(month, {})
                by_key[key] = by_key.get(key, 0) + days
                segments[key].customer_month_units += days * (MONTH_UNITS // length)
                segments[key].active_days += days
        for month, by_key in month_days.items() if infra_nanos else ():
            days = sum(by_key.values())  # infra x days / the month's days, to the nano-dollar
            piece = _round_div(infra_nanos * days, infra.denominator * month_length[month])
            for key, part in zip(by_key, _allocate(piece, list(by_key.values())), strict=True):
                segments[key].infra += part
        # revenue lines: one rounding per line, split over the segments by days
        has_lines = False
        for line in lines.get(customer_id, []):
            nanos, overlap = _line_nanos(line, start, end)
            if overlap is None:
                continue
            has_lines = True
            days_by_key: dict[SegmentKey, int] = {}
            for span in customer.spans:
                within = _overlap(span.first, span.last, *overlap)
                if within is not None:
                    key = OFF_TERM if span.term is None else mine[span.term].plan
                    days_by_key[key] = days_by_key.get(key, 0) + _day_span(*within)
            for key, part in zip(
                days_by_key, _allocate(nanos, list(days_by_key.values())), strict=True
            ):
                segments.setdefault(key, _Segment()).line_revenue += part
        for plan, (nanos, unpriced) in attribution.plan_sums.get(customer_id, {}).items():
            segment = segments.get(plan)
            if segment is None:
                segment = segments[plan] = _Segment()
            segment.ai_cost += nanos
            segment.unpriced_calls += unpriced
        revenues = [s.revenue for s in segments.values()]
        fees = _round_div(fee.numerator * sum(revenues), fee.denominator)  # half-even
        for segment, part in zip(segments.values(), _allocate(fees, revenues), strict=True):
            segment.fees = part
        active_days = sum(s.active_days for s in segments.values())
        if not active_days and not has_lines:
            continue
        if active_terms:
            latest = mine[max(active_terms)[1]]
            name, plan = latest.name, latest.plan
        elif mine:
            name, plan = mine[max((t.start, i) for i, t in enumerate(mine))[1]].name, None
        else:
            name, plan = customer_id, None
        books.append(_Book(customer_id, name, plan, segments, active_days, has_lines))
    return books


@functools.lru_cache(maxsize=4096)
def _owned_days(
    first: date, last: date, infra_nanos: int, infra_denominator: int
) -> tuple[int, int, int]:
    """The days [first, last] of one segment, the only one owning days in the period:
    (customer-month units, active days, infra in nano-dollars), as the general loop of
    ``customer_books`` sums them by month. Cached: most customers' one term covers the same
    days of a period, and each month's rounding was made again for each of them."""
    units = days = infra_part = 0
    for _month, touched, length in _months(first, last):
        units += touched * (MONTH_UNITS // length)
        days += touched
        if infra_nanos:
            infra_part += _round_div(infra_nanos * touched, infra_denominator * length)
    return units, days, infra_part


def customer_margins(
    terms: Iterable[Term],
    plans: Mapping[str, Plan],
    attribution: CostAttribution,
    start: date,
    end: date,
    revenue_lines: Iterable[RevenueLine] = (),
    fee_pct: Number = 0,
    infra_per_month: Number = 0,
    books: list[_Book] | None = None,
) -> list[CustomerMargin]:
    """Each customer's margin over the period [start, end], by customer id.

    revenue (``customer_revenue``) - AI cost (``attribution``, made by ``attribute_costs`` for
    the same period and terms) - payment fees (``fee_pct`` percent of the revenue, rounded
    half-even to the nano-dollar) - infrastructure (``infra_per_month`` per customer and month,
    prorated like a plan price: per calendar month, x the days the customer has a term active
    in it / the month's days, each month rounded to the nano-dollar). The customers are those
    with a term active in the period or a revenue line overlapping it. ``books``: the same
    arguments' ``customer_books``, when the caller has them already (``plan_margins`` too).
    """
    if books is None:
        books = customer_books(
            terms, plans, attribution, start, end, revenue_lines, fee_pct, infra_per_month
        )
    result = []
    for book in books:
        t = summed(book.segments.values())
        revenue, margin = t.revenue, t.margin
        result.append(
            CustomerMargin(
                customer_id=book.customer_id,
                name=book.name,
                plan=book.plan,
                revenue=from_nanos(revenue),
                ai_cost=from_nanos(t.ai_cost),
                fees=from_nanos(t.fees),
                infra=from_nanos(t.infra),
                margin=from_nanos(margin),
                margin_pct=_pct(margin, revenue),
                unpriced_calls=t.unpriced_calls,
                active_days=book.active_days,
            )
        )
    return result


# --- distribution ----------------------------------------------------------------------------


def percentile(values: Iterable[Decimal], p: Number) -> Decimal | None:
    """The nearest-rank ``p``-th percentile (0 < p <= 100; 0 is the smallest) of exact values:
    the value at rank ceil(p/100 x n) in ascending order, never an interpolation. None when
    there are no values."""
    ordered = sorted(values)
    if not ordered:
        return None
    if not 0 <= p <= 100:
        raise ValueError(f"a percentile is between 0 and 100, not {p}")
    rank = max(1, math.ceil(_exact(p) * len(ordered) / 100))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Spread:
    p10: Decimal | None
    p50: Decimal | None
    p90: Decimal | None


def margin_percentiles(margins: Iterable[CustomerMargin]) -> Spread:
    """p10, p50 and p90 of the customers' margins in dollars (nearest rank, exact)."""
    values = [m.margin for m in margins]
    return Spread(percentile(values, 10), percentile(values, 50), percentile(values, 90))


@dataclass(frozen=True)
class MarginTotals:
    customers: int
    revenue: Decimal
    ai_cost: Decimal
    fees: Decimal
    infra: Decimal
    margin: Decimal
    margin_pct: Decimal | None
    unpriced_calls: int


def margin_totals(margins: Iterable[CustomerMargin]) -> MarginTotals:
    """Exact sums over customers; margin_pct of the sums (None when the revenue sums to 0)."""
    rows = list(margins)
    add = _EXACT_SUM.add  # no rounding at any size (the default context keeps 28 digits)

    def total(field: str) -> Decimal:
        amount = from_nanos(0)
        for m in rows:
            amount = add(amount, getattr(m, field))
        return amount

    revenue, margin = total("revenue"), total("margin")
    return MarginTotals(
        customers=len(rows),
        revenue=revenue,
        ai_cost=total("ai_cost"),
        fees=total("fees"),
        infra=total("infra"),
        margin=margin,
        margin_pct=_pct(to_nanos(margin), to_nanos(revenue)),
        unpriced_calls=sum(m.unpriced_calls for m in rows),
    )


_EXACT_SUM = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN)


def unprofitable(margins: Iterable[CustomerMargin]) -> list[CustomerMargin]:
    """Customers whose margin is below zero, worst first."""
    return sorted((m for m in margins if m.margin < 0), key=lambda m: (m.margin, m.customer_id))


def below_margin(margins: Iterable[CustomerMargin], pct: Number) -> list[CustomerMargin]:
    """Customers whose margin_pct is below ``pct`` percent, worst margin first. A customer with
    no revenue has no margin_pct: it is below any threshold when its margin is negative, and
    below none when it is 0."""
    threshold = _exact(pct)

    def low(m: CustomerMargin) -> bool:
        if m.margin_pct is None:
            return m.margin < 0
        return Fraction(m.margin_pct) < threshold

    return sorted((m for m in margins if low(m)), key=lambda m: (m.margin, m.customer_id))
