"""Which term owns each day of a customer's period, and so whose AI cost each call is."""

from __future__ import annotations

import bisect
import functools
import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from dashboard.economics.accounts import Term
from dashboard.economics.money import CostRow, _check_period, _overlap
from tracking.sqltypes import from_nanos

# --- which term owns a day -------------------------------------------------------------------


@dataclass(frozen=True)
class _Span:
    first: date
    last: date
    term: int | None  # index in the customer's terms of the term that owns these days


def _spans(terms: Sequence[Term], start: date, end: date) -> list[_Span]:
    """[start, end] cut into spans of days owned by one term (or by none). When terms overlap,
    the one that started last owns the day (a tie: the later one in the input)."""
    if len(terms) == 1:  # most customers: the days before, during and after the one term
        active = _overlap(terms[0].start, terms[0].end, start, end)
        if active is None:
            return [_Span(start, end, None)]
        first, last = active
        spans = [_Span(start, first - timedelta(days=1), None)] if first > start else []
        spans.append(_Span(first, last, 0))
        if last < end:
            spans.append(_Span(last + timedelta(days=1), end, None))
        return spans
    points = {start, end + timedelta(days=1)}
    for term in terms:
        active = _overlap(term.start, term.end, start, end)
        if active is not None:
            points.update((active[0], active[1] + timedelta(days=1)))
    cuts = sorted(points)
    spans: list[_Span] = []
    for first, after in itertools.pairwise(cuts):
        owners = [
            (t.start, i)
            for i, t in enumerate(terms)
            if t.start <= first and (t.end is None or first <= t.end)
        ]
        owner = max(owners)[1] if owners else None
        last = after - timedelta(days=1)
        if spans and spans[-1].term == owner:
            spans[-1] = _Span(spans[-1].first, last, owner)
        else:
            spans.append(_Span(first, last, owner))
    return spans


class _Customer:
    """A customer's terms and who owns each day of the period."""

    __slots__ = ("_firsts", "spans", "terms")

    def __init__(self, terms: list[Term], start: date, end: date) -> None:
        self.terms = terms
        self.spans = _spans(terms, start, end)
        self._firsts = [s.first for s in self.spans]

    def owner(self, day: date) -> Term | None:
        spans = self.spans
        if len(spans) == 1:  # one term or none owns the whole period
            term = spans[0].term
        else:
            term = spans[bisect.bisect_right(self._firsts, day) - 1].term
        return None if term is None else self.terms[term]


Customers = dict[str, _Customer]


def customers_of(terms: Iterable[Term], start: date, end: date) -> Customers:
    """Every customer's terms and day owners over the period: what the costs, the attribution
    and the books each need, made once for the three by ``margins_report``."""
    return {c: _Customer(ts, start, end) for c, ts in _by_customer(terms).items()}


def _by_customer(terms: Iterable[Term]) -> dict[str, list[Term]]:
    grouped: dict[str, list[Term]] = {}
    for term in terms:
        grouped.setdefault(term.customer_id, []).append(term)
    return grouped


# --- AI cost attribution ---------------------------------------------------------------------


@dataclass(frozen=True)
class AICost:
    """An exact AI cost and the calls it leaves out because they are unpriced (never $0)."""

    cost: Decimal = Decimal(0)
    unpriced_calls: int = 0


Sums = tuple[int, int]  # nano-dollars, unpriced calls


@dataclass(frozen=True)
class CostAttribution:
    """AI costs of the period [start, end] by customer, and by customer and the plan of the term
    that owned each day; what no term covers is the ``no_plan`` bucket, from ``no_plan_users``
    distinct user ids (calls without a user id count there, not as a user).

    The sums are kept in nano-dollars (``customer_sums``, ``plan_sums``), which the books add
    up; ``customers`` and ``by_plan`` are the same as ``AICost``s, made when first read."""

    start: date
    end: date
    customer_sums: dict[str, Sums]
    plan_sums: dict[str, dict[str | None, Sums]]  # customer_id -> term's plan -> sums
    no_plan: AICost
    no_plan_users: int

    @functools.cached_property
    def customers(self) -> dict[str, AICost]:
        return {c: AICost(from_nanos(n), u) for c, (n, u) in self.customer_sums.items()}

    @functools.cached_property
    def by_plan(self) -> dict[str, dict[str | None, AICost]]:
        return {
            c: {p: AICost(from_nanos(n), u) for p, (n, u) in by.items()}
            for c, by in self.plan_sums.items()
        }


def attribute_costs(
    costs: Iterable[CostRow],
    customer_users: Mapping[str, Iterable[str]],
    terms: Iterable[Term],
    start: date,
    end: date,
    customers: Customers | None = None,
) -> CostAttribution:
    """Attribute per-(user, day) AI costs of the period to customers.

    ``costs`` holds (user_id, day, cost in nano-dollars, unpriced calls) rows; rows outside
    [start, end] are ignored. A user's cost on a day goes to the customer (of those
    ``customer_users`` maps it to) with a term active that day, and within the customer to the
    plan of the term that owns the day (overlapping terms: the one started last). A day outside
    every term of the user's customers (calls before the customer started, after it left) and a
    user mapped to no customer go to the ``no_plan`` bucket. A user mapped to several customers
    active the same day goes to the one whose owning term started last (a tie: the smallest
    customer id). Unpriced call counts travel with the costs. ``customers``: ``customers_of``
    the same terms and period, when the caller has it.
    """
    _check_period(start, end)
    if customers is None:
        customers = customers_of(terms, start, end)
    of_user: dict[str, list[str]] = {}
    for customer_id, users in customer_users.items():
        for mapped in users:
            of_user.setdefault(mapped, []).append(customer_id)
    totals: dict[str, list[int]] = {}
    plans: dict[str, dict[str | None, list[int]]] = {}
    no_plan = [0, 0]
    no_plan_users: set[str] = set()
    for user, day, nanos, unpriced in costs:
        if not start <= day <= end:
            continue
        best: tuple[date, str, Term] | None = None
        for customer_id in of_user.get(user, ()) if user is not None else ():
            known = customers.get(customer_id)
            term = known.owner(day) if known is not None else None
            if term is not None and (
                best is None
                or term.start > best[0]
                or (term.start == best[0] and customer_id < best[1])
            ):
                best = (term.start, customer_id, term)
        if best is None:
            no_plan[0] += nanos
            no_plan[1] += unpriced
            if user is not None:
                no_plan_users.add(user)
            continue
        customer_id, plan = best[1], best[2].plan
        acc = totals.get(customer_id)
        if acc is None:
            acc = totals[customer_id] = [0, 0]
            plans[customer_id] = {}
        acc[0] += nanos
        acc[1] += unpriced
        by = plans[customer_id]
        acc = by.get(plan)
        if acc is None:
            acc = by[plan] = [0, 0]
        acc[0] += nanos
        acc[1] += unpriced
    return CostAttribution(
        start=start,
        end=end,
        customer_sums={c: (n, u) for c, (n, u) in totals.items()},
        plan_sums={c: {p: (n, u) for p, (n, u) in by.items()} for c, by in plans.items()},
        no_plan=AICost(from_nanos(no_plan[0]), no_plan[1]),
        no_plan_users=len(no_plan_users),
    )
