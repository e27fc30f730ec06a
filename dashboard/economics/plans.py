"""Each plan's margin over a period, and the price per seat that reaches a margin."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from fractions import Fraction

from dashboard.economics.accounts import Plan, RevenueLine, Term
from dashboard.economics.attribution import CostAttribution
from dashboard.economics.margins import (
    _Book,
    _OffTerm,
    _Segment,
    customer_books,
    percentile,
    summed,
)
from dashboard.economics.money import Number, _exact, _nanos, _pct
from tracking.sqltypes import NANOS_PER_DOLLAR, from_nanos


def price_for_margin(
    ai_cost: Number,
    infra: Number,
    fee_pct: Number = 0,
    target_pct: Number = 0,
    seat_months: Number = 1,
) -> Decimal | None:
    """The price per seat and month ``p`` at which ``(p(1 - fee) - cost - infra) / p`` is the
    target margin (0: the break-even price), where ``ai_cost`` and ``infra`` are the totals over
    ``seat_months`` seat-months: ``p = (cost + infra) / ((1 - fee - target) x seat_months)``,
    rounded half-even to the nano-dollar. None when no price reaches it (fee + target >= 100 %)
    or there are no seat-months."""
    share = 1 - (_exact(fee_pct) + _exact(target_pct)) / 100
    months = _exact(seat_months)
    if share <= 0 or months <= 0:
        return None
    return from_nanos(_nanos((_exact(ai_cost) + _exact(infra)) / (share * months)))


@dataclass(frozen=True)
class PlanMargin:
    """A plan's figures over a period (see ``plan_margins``)."""

    plan: str | None
    active_customers: int
    customer_months: Fraction
    seat_months: Fraction
    revenue: Decimal
    ai_cost: Decimal
    fees: Decimal
    infra: Decimal
    gross_margin: Decimal
    margin_pct: Decimal | None
    avg_ai_cost: Decimal | None  # per active customer
    p90_ai_cost: Decimal | None  # per active customer, nearest rank
    allowance_used_pct: Decimal | None  # AI cost per customer-month / included_usage x 100
    break_even_price: Decimal | None  # per seat and month
    profitable_customers: int  # customers whose margin on the plan is above 0
    profitable_pct: Decimal | None
    target_price: Decimal | None  # per seat and month, reaching target_margin_pct
    unpriced_calls: int


def plan_margins(
    terms: Iterable[Term],
    plans: Mapping[str, Plan],
    attribution: CostAttribution,
    start: date,
    end: date,
    revenue_lines: Iterable[RevenueLine] = (),
    fee_pct: Number = 0,
    infra_per_month: Number = 0,
    target_margin_pct: Number | None = None,
    books: list[_Book] | None = None,
) -> list[PlanMargin]:
    """Each plan's figures over the period: the plans of ``plans`` in their order, then plan
    names only terms know (sorted), then terms on no plan (``plan`` None).

    A customer is active on a plan when one of its terms on that plan is active any day of the
    period; a customer that changed plans counts on each, with the part of its period on each.
    Its revenue from a term goes to the term's plan; its AI cost, infrastructure and the days of
    its revenue lines go to the plan of the term that owns each day (overlapping terms: the one
    started last); its fee is split by revenue. Revenue lines on days outside every term belong
    to no plan. The split is exact: over plans (and those lines) it sums to the customers'.

    ``avg_ai_cost`` and ``p90_ai_cost`` are per active customer; ``allowance_used_pct`` is the
    AI cost per customer-month over the plan's ``included_usage`` (None without one);
    ``break_even_price`` the price per seat and month at which the plan's margin would be 0 with
    this AI cost, infrastructure and fee (no discounts, no custom prices, no revenue lines);
    ``target_price`` the same for ``target_margin_pct``; ``profitable_customers`` those whose own
    margin on the plan is above 0 (what the plan charges them covers their cost).
    """
    if books is None:  # the same arguments' customercustomer_books, unless the caller has them
        books = customer_books(
            terms, plans, attribution, start, end, revenue_lines, fee_pct, infra_per_month
        )
    seen: dict[str | None, list[_Segment]] = {name: [] for name in plans}
    for book in books:
        for key, segment in book.segments.items():
            if isinstance(key, _OffTerm) or not segment.on_plan:
                continue
            seen.setdefault(key, []).append(segment)
    unknown = sorted(k for k in seen if k is not None and k not in plans)
    order: list[str | None] = [*plans, *unknown]
    if None in seen:
        order.append(None)
    result = []
    for name in order:
        segments = seen[name]
        n = len(segments)
        t = summed(segments)
        revenue, ai_cost, infra, fees, margin = t.revenue, t.ai_cost, t.infra, t.fees, t.margin
        customer_months, seat_months = t.customer_months, t.seat_months
        profitable = sum(1 for s in segments if s.margin > 0)
        plan = plans.get(name) if name is not None else None
        included = plan.included_usage if plan is not None else None
        allowance = None
        if included and customer_months:
            allowance = _pct(Fraction(ai_cost, NANOS_PER_DOLLAR) / customer_months, included)
        result.append(
            PlanMargin(
                plan=name,
                active_customers=n,
                customer_months=customer_months,
                seat_months=seat_months,
                revenue=from_nanos(revenue),
                ai_cost=from_nanos(ai_cost),
                fees=from_nanos(fees),
                infra=from_nanos(infra),
                gross_margin=from_nanos(margin),
                margin_pct=_pct(margin, revenue),
                avg_ai_cost=from_nanos(_nanos(Fraction(ai_cost, n * NANOS_PER_DOLLAR)))
                if n
                else None,
                p90_ai_cost=percentile((from_nanos(s.ai_cost) for s in segments), 90),
                allowance_used_pct=allowance,
                break_even_price=price_for_margin(
                    from_nanos(ai_cost), from_nanos(infra), fee_pct, 0, seat_months
                ),
                profitable_customers=profitable,
                profitable_pct=_pct(profitable, n),
                target_price=None
                if target_margin_pct is None
                else price_for_margin(
                    from_nanos(ai_cost), from_nanos(infra), fee_pct, target_margin_pct, seat_months
                ),
                unpriced_calls=t.unpriced_calls,
            )
        )
    return result
