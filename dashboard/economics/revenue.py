"""What customers pay: a term's revenue by month piece, a revenue line's, a customer's."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from datetime import date
from decimal import Decimal
from fractions import Fraction

from dashboard.economics.accounts import Plan, RevenueLine, Term
from dashboard.economics.money import (
    Number,
    _check_period,
    _day_span,
    _exact,
    _months,
    _nanos,
    _overlap,
    _round_div,
)
from tracking.sqltypes import NANOS_PER_DOLLAR, from_nanos


def _plan_month_price(plan: Plan) -> Fraction:
    """A plan's price per seat and month, exactly (a yearly price / 12, no 28-digit rounding)."""
    if plan.period == "month":
        return Fraction(plan.price)
    if plan.period == "year":
        return Fraction(plan.price) / 12
    raise ValueError(f"plan {plan.name!r}: unknown billing period {plan.period!r}")


@functools.lru_cache(maxsize=4096)
def _monthly_charge(
    plan: Plan | None, seats: int, discount_pct: Number, custom_price: Number | None
) -> Fraction:
    """What a customer pays for a whole month: the custom price when set (the customer's whole
    monthly price, seats and discount not applied), else the plan's monthly price per seat x
    seats less the discount; 0 without a (known) plan. Cached: customers share a few plans,
    seat counts and discounts, and building the Fraction cost 20 us a customer."""
    if custom_price is not None:
        return _exact(custom_price)
    if plan is None:
        return Fraction(0)
    return _plan_month_price(plan) * seats * (100 - _exact(discount_pct)) / 100


def term_monthly_charge(term: Term, plans: Mapping[str, Plan]) -> Fraction:
    """The exact price of a whole month of ``term`` (see ``term_revenue``)."""
    plan = plans.get(term.plan) if term.plan is not None else None
    return _monthly_charge(plan, term.seats, term.discount_pct, term.custom_price)


def _term_pieces(
    term: Term, plans: Mapping[str, Plan], start: date, end: date
) -> tuple[tuple[tuple[int, int], int, int, int], ...]:
    """The (term, month) pieces of a term's revenue: ((year, month), days, month length, nanos)."""
    active = _overlap(term.start, term.end, start, end)
    if active is None:
        return ()
    monthly = term_monthly_charge(term, plans)
    return _pieces(monthly.numerator, monthly.denominator, *active)


@functools.lru_cache(maxsize=4096)
def _pieces(
    numerator: int, denominator: int, first: date, last: date
) -> tuple[tuple[tuple[int, int], int, int, int], ...]:
    """``_term_pieces`` of a monthly charge (numerator / denominator dollars) active from
    ``first`` to ``last``. Cached: most of 22,000 customers share a charge and the period's
    days, and each piece's rounding was made again for every one of them."""
    top = numerator * NANOS_PER_DOLLAR
    return tuple(  # monthly x days / length, to the nano-dollar, half-even
        (month, days, length, _round_div(top * days, denominator * length))
        for month, days, length in _months(first, last)
    )


def term_revenue(term: Term, plans: Mapping[str, Plan], start: date, end: date) -> Decimal:
    """What ``term`` earns over the period ``start`` to ``end`` (both days included).

    Per calendar month the period touches: the term's monthly price x the days the term is
    active in that month within the period / the days of that month, each (term, month) piece
    rounded half-even to the nano-dollar, the pieces summed exactly. The monthly price is the
    plan's monthly price per seat (a yearly price / 12, exactly) x seats, less ``discount_pct``
    percent; or ``custom_price``, the whole customer's monthly price, when it is set (it wins
    with or without a plan). A term on no plan or on a plan ``plans`` does not know earns 0.
    ``plans`` maps plan names to plans; a plan's ``active_from``/``active_to`` (when it can be
    chosen) do not matter for terms already on it.
    """
    _check_period(start, end)
    return from_nanos(sum(piece[3] for piece in _term_pieces(term, plans, start, end)))


def _line_nanos(line: RevenueLine, start: date, end: date) -> tuple[int, tuple[date, date] | None]:
    if line.end < line.start:
        raise ValueError(f"revenue line of {line.customer_id}: ends before it starts")
    overlap = _overlap(line.start, line.end, start, end)
    if overlap is None:
        return 0, None
    days = _day_span(*overlap)
    return _nanos(Fraction(line.amount) * days / _day_span(line.start, line.end)), overlap


def line_revenue(line: RevenueLine, start: date, end: date) -> Decimal:
    """The part of a revenue line that falls in the period: ``amount`` x the days of
    [line.start, line.end] inside [start, end] / the line's days, rounded half-even to the
    nano-dollar (one rounding per line and period). A line ending before it starts is an error."""
    _check_period(start, end)
    return from_nanos(_line_nanos(line, start, end)[0])


def customer_revenue(
    customer_id: str,
    terms: Iterable[Term],
    plans: Mapping[str, Plan],
    start: date,
    end: date,
    revenue_lines: Iterable[RevenueLine] = (),
) -> Decimal:
    """A customer's revenue over the period: its terms' revenue (``term_revenue``) plus its
    revenue lines' (``line_revenue``), summed exactly."""
    _check_period(start, end)
    total = sum(
        piece[3]
        for term in terms
        if term.customer_id == customer_id
        for piece in _term_pieces(term, plans, start, end)
    )
    total += sum(
        _line_nanos(line, start, end)[0]
        for line in revenue_lines
        if line.customer_id == customer_id
    )
    return from_nanos(total)
