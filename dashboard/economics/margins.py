"""Pure money calculations for the pages: no Streamlit, no SQL, so they are unit-tested alone."""

from __future__ import annotations

import bisect
import calendar
import itertools
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import TYPE_CHECKING, Any, NamedTuple

from tracking.sqltypes import NANOS_PER_DOLLAR, from_nanos, to_nanos

if TYPE_CHECKING:
    from tracking.pricing import PriceBook

Z_90 = 1.645  # two-sided 90% band of a normal distribution
MIN_HISTORY_DAYS = 7


@dataclass(frozen=True)
class Projection:
    """Where this month's cost is heading: the expected total and a 90% band around it."""

    month_to_date: Decimal
    expected: float
    low: float
    high: float
    daily_rate: float  # the recent average day the projection extends
    days_left: float  # what is left of the month, today's unelapsed part included
    history_days: int  # complete days since the first call that the rate comes from

    @property
    def enough_history(self) -> bool:
        """A week of complete days at least: fewer give a band that means nothing."""
        return self.history_days >= MIN_HISTORY_DAYS


def month_to_date(costs: Mapping[date, Decimal], today: date) -> Decimal:
    """Exact sum of this month's daily costs up to and including today."""
    first = today.replace(day=1)
    return sum((v for d, v in costs.items() if first <= d <= today), Decimal(0))


def project_month_end(costs: Mapping[date, Decimal], now: datetime, window: int = 14) -> Projection:
    """Month to date plus the recent daily rate times what is left of the month.

    The rate is the mean of the last ``window`` complete days (today is still running, so it is
    not one of them); days without calls count as $0. The band assumes days vary independently
    around that mean: sd of a day times the square root of the days left, at 90%. It never goes
    below what is already spent.
    """
    today = now.date()
    mtd = month_to_date(costs, today)
    days = [today - timedelta(days=i) for i in range(1, window + 1)]
    history = [float(costs.get(d, Decimal(0))) for d in days]
    seen = [d for d in days if d >= min(costs, default=today)]
    history = history[: max(1, len(seen))]
    rate = sum(history) / len(history)
    spread = (
        math.sqrt(sum((x - rate) ** 2 for x in history) / (len(history) - 1))
        if len(history) > 1
        else 0.0
    )
    month_days = calendar.monthrange(today.year, today.month)[1]
    elapsed_today = (now.hour * 3600 + now.minute * 60 + now.second) / 86400
    days_left = (month_days - today.day) + (1 - elapsed_today)
    expected = float(mtd) + rate * days_left
    margin = Z_90 * spread * math.sqrt(days_left)
    return Projection(
        month_to_date=mtd,
        expected=expected,
        low=max(float(mtd), expected - margin),
        high=expected + margin,
        daily_rate=rate,
        days_left=days_left,
        history_days=len(seen),
    )


def change(current: Decimal, previous: Decimal) -> float | None:
    """Relative change from ``previous`` to ``current``; None when there is nothing to compare
    (``previous`` under a cent: a percentage of almost nothing says nothing)."""
    if abs(previous) < Decimal("0.01"):
        return None
    return float((current - previous) / previous)


# --- Users & margins: the shapes the margin functions take (the store's rows, loaded) ---------


@dataclass(frozen=True)
class Plan:
    """A price plan: ``price`` per seat and billing ``period`` ("month" or "year", shown as
    monthly), in USD; ``included_usage``: the AI cost in dollars a customer's month includes."""

    name: str
    price: Decimal
    period: str = "month"
    included_usage: Decimal | None = None
    active_from: date | None = None
    active_to: date | None = None

    @property
    def monthly_price(self) -> Decimal:
        """Per seat and month; exact for a yearly price too (a Decimal division by 12 is
        rounded only where it does not terminate, at 28 digits, far below a nano-dollar)."""
        return self.price if self.period == "month" else self.price / 12


@dataclass(frozen=True)
class Term:
    """One customer's subscription term: on ``plan`` from ``start`` to ``end`` (both days
    included; None: still active), with ``seats`` seats, a ``discount_pct`` off the plan's
    price, or a ``custom_price`` per month that replaces it. A plan change ends one term and
    starts the next; the customer's user ids are the same across its terms."""

    customer_id: str
    name: str
    plan: str | None
    start: date
    end: date | None = None
    seats: int = 1
    discount_pct: Decimal = Decimal(0)
    custom_price: Decimal | None = None


@dataclass(frozen=True)
class RevenueLine:
    """Usage-based or one-off revenue of a customer for the days ``start`` to ``end``."""

    customer_id: str
    start: date
    end: date
    amount: Decimal
    note: str | None = None


# --- Users & margins: the calculations -------------------------------------------------------
#
# Money is exact: every amount below is a whole number of nano-dollars (an int) while it is
# summed, or a Fraction before its one rounding (half-even, to the nano-dollar), and leaves as a
# Decimal of exponent -9. Percentages (discount, payment fee, margin targets, churn) are in
# percent: Decimal("2.9") is 2.9 %.

AVERAGE_MONTH_DAYS = Fraction(36525, 1200)  # 365.25 / 12 = 30.4375 days, exactly
CostRow = tuple[str | None, date, int, int]  # (user_id, day, cost in nano-dollars, unpriced calls)
Number = Decimal | int | Fraction


class _OffTerm:
    """The segment key of a customer's days outside every term (revenue lines only)."""

    def __repr__(self) -> str:
        return "OFF_TERM"


OFF_TERM = _OffTerm()
SegmentKey = str | None | _OffTerm


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


def _plan_month_price(plan: Plan) -> Fraction:
    """A plan's price per seat and month, exactly (a yearly price / 12, no 28-digit rounding)."""
    if plan.period == "month":
        return Fraction(plan.price)
    if plan.period == "year":
        return Fraction(plan.price) / 12
    raise ValueError(f"plan {plan.name!r}: unknown billing period {plan.period!r}")


def _monthly_charge(
    plan: Plan | None, seats: int, discount_pct: Number, custom_price: Number | None
) -> Fraction:
    """What a customer pays for a whole month: the custom price when set (the customer's whole
    monthly price, seats and discount not applied), else the plan's monthly price per seat x
    seats less the discount; 0 without a (known) plan."""
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
) -> list[tuple[tuple[int, int], int, int, int]]:
    """The (term, month) pieces of a term's revenue: ((year, month), days, month length, nanos)."""
    active = _overlap(term.start, term.end, start, end)
    if active is None:
        return []
    monthly = term_monthly_charge(term, plans)
    return [
        (month, days, length, _nanos(monthly * days / length))
        for month, days, length in _months(*active)
    ]


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


# --- which term owns a day -------------------------------------------------------------------


@dataclass(frozen=True)
class _Span:
    first: date
    last: date
    term: int | None  # index in the customer's terms of the term that owns these days


def _spans(terms: Sequence[Term], start: date, end: date) -> list[_Span]:
    """[start, end] cut into spans of days owned by one term (or by none). When terms overlap,
    the one that started last owns the day (a tie: the later one in the input)."""
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

    def __init__(self, terms: list[Term], start: date, end: date) -> None:
        self.terms = terms
        self.spans = _spans(terms, start, end)
        self._firsts = [s.first for s in self.spans]

    def owner(self, day: date) -> Term | None:
        span = self.spans[bisect.bisect_right(self._firsts, day) - 1]
        return None if span.term is None else self.terms[span.term]


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


@dataclass(frozen=True)
class CostAttribution:
    """AI costs of the period [start, end] by customer, and by customer and the plan of the term
    that owned each day; what no term covers is the ``no_plan`` bucket, from ``no_plan_users``
    distinct user ids (calls without a user id count there, not as a user)."""

    start: date
    end: date
    customers: dict[str, AICost]
    by_plan: dict[str, dict[str | None, AICost]]  # customer_id -> term's plan -> cost
    no_plan: AICost
    no_plan_users: int


def attribute_costs(
    costs: Iterable[CostRow],
    customer_users: Mapping[str, Iterable[str]],
    terms: Iterable[Term],
    start: date,
    end: date,
) -> CostAttribution:
    """Attribute per-(user, day) AI costs of the period to customers.

    ``costs`` holds (user_id, day, cost in nano-dollars, unpriced calls) rows; rows outside
    [start, end] are ignored. A user's cost on a day goes to the customer (of those
    ``customer_users`` maps it to) with a term active that day, and within the customer to the
    plan of the term that owns the day (overlapping terms: the one started last). A day outside
    every term of the user's customers (calls before the customer started, after it left) and a
    user mapped to no customer go to the ``no_plan`` bucket. A user mapped to several customers
    active the same day goes to the one whose owning term started last (a tie: the smallest
    customer id). Unpriced call counts travel with the costs.
    """
    _check_period(start, end)
    customers = {c: _Customer(ts, start, end) for c, ts in _by_customer(terms).items()}
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
        customer_id, term = best[1], best[2]
        for acc in (
            totals.setdefault(customer_id, [0, 0]),
            plans.setdefault(customer_id, {}).setdefault(term.plan, [0, 0]),
        ):
            acc[0] += nanos
            acc[1] += unpriced
    return CostAttribution(
        start=start,
        end=end,
        customers={c: AICost(from_nanos(n), u) for c, (n, u) in totals.items()},
        by_plan={
            c: {p: AICost(from_nanos(n), u) for p, (n, u) in by.items()} for c, by in plans.items()
        },
        no_plan=AICost(from_nanos(no_plan[0]), no_plan[1]),
        no_plan_users=len(no_plan_users),
    )


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
    customer_months: Fraction = Fraction(0)  # days owned / month length, summed over months
    seat_months: Fraction = Fraction(0)  # seats x days active / month length, over its terms
    on_plan: bool = False  # a term on this plan is active in the period

    @property
    def revenue(self) -> int:
        return self.plan_revenue + self.line_revenue

    @property
    def margin(self) -> int:
        return self.revenue - self.ai_cost - self.fees - self.infra


@dataclass
class _Book:
    customer_id: str
    name: str
    plan: str | None
    segments: dict[SegmentKey, _Segment]
    active_days: int
    has_lines: bool

    def total(self, field: str) -> int:
        return sum(getattr(s, field) for s in self.segments.values())


def _books(
    terms: Iterable[Term],
    plans: Mapping[str, Plan],
    attribution: CostAttribution,
    start: date,
    end: date,
    revenue_lines: Iterable[RevenueLine],
    fee_pct: Number,
    infra_per_month: Number,
) -> list[_Book]:
    """Every customer's figures over the period, by segment. Customer-level figures follow the
    rules of ``customer_margins``; a plan's share of a customer's revenue line, fee and infra
    is split by largest remainder, so the segments sum to the customer to the nano-dollar."""
    _check_period(start, end)
    if (attribution.start, attribution.end) != (start, end):
        raise ValueError(
            f"the costs were attributed for {attribution.start}..{attribution.end},"
            f" not for {start}..{end}"
        )
    fee = _exact(fee_pct) / 100
    infra = _exact(infra_per_month)
    grouped = _by_customer(terms)
    lines: dict[str, list[RevenueLine]] = {}
    for line in revenue_lines:
        lines.setdefault(line.customer_id, []).append(line)
    books = []
    for customer_id in sorted(set(grouped) | set(lines)):
        mine = grouped.get(customer_id, [])
        customer = _Customer(mine, start, end)
        segments: dict[SegmentKey, _Segment] = {}
        active_terms = []
        for index, term in enumerate(mine):
            pieces = _term_pieces(term, plans, start, end)
            if not pieces:
                continue
            active_terms.append((term.start, index))
            segment = segments.setdefault(term.plan, _Segment())
            segment.on_plan = True
            for _month, days, length, nanos in pieces:
                segment.plan_revenue += nanos
                segment.seat_months += Fraction(term.seats * days, length)
        # the days each segment owns, by month: customer-months, active days, infra
        month_days: dict[tuple[int, int], dict[SegmentKey, int]] = {}
        month_length: dict[tuple[int, int], int] = {}
        for span in customer.spans:
            if span.term is None:
                continue
            key: SegmentKey = mine[span.term].plan
            for month, days, length in _months(span.first, span.last):
                month_length[month] = length
                by_key = month_days.setdefault(month, {})
                by_key[key] = by_key.get(key, 0) + days
                segments[key].customer_months += Fraction(days, length)
                segments[key].active_days += days
        for month, by_key in month_days.items():
            piece = _nanos(infra * sum(by_key.values()) / month_length[month])
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
        for plan, cost in attribution.by_plan.get(customer_id, {}).items():
            segment = segments.setdefault(plan, _Segment())
            segment.ai_cost += to_nanos(cost.cost)
            segment.unpriced_calls += cost.unpriced_calls
        revenues = [s.revenue for s in segments.values()]
        fees = round(fee * sum(revenues))  # nanos x a fraction, half-even
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


def customer_margins(
    terms: Iterable[Term],
    plans: Mapping[str, Plan],
    attribution: CostAttribution,
    start: date,
    end: date,
    revenue_lines: Iterable[RevenueLine] = (),
    fee_pct: Number = 0,
    infra_per_month: Number = 0,
) -> list[CustomerMargin]:
    """Each customer's margin over the period [start, end], by customer id.

    revenue (``customer_revenue``) - AI cost (``attribution``, made by ``attribute_costs`` for
    the same period and terms) - payment fees (``fee_pct`` percent of the revenue, rounded
    half-even to the nano-dollar) - infrastructure (``infra_per_month`` per customer and month,
    prorated like a plan price: per calendar month, x the days the customer has a term active
    in it / the month's days, each month rounded to the nano-dollar). The customers are those
    with a term active in the period or a revenue line overlapping it.
    """
    books = _books(terms, plans, attribution, start, end, revenue_lines, fee_pct, infra_per_month)
    result = []
    for book in books:
        revenue = book.total("revenue")
        margin = book.total("margin")
        result.append(
            CustomerMargin(
                customer_id=book.customer_id,
                name=book.name,
                plan=book.plan,
                revenue=from_nanos(revenue),
                ai_cost=from_nanos(book.total("ai_cost")),
                fees=from_nanos(book.total("fees")),
                infra=from_nanos(book.total("infra")),
                margin=from_nanos(margin),
                margin_pct=_pct(margin, revenue),
                unpriced_calls=book.total("unpriced_calls"),
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

    def total(field: str) -> int:
        return sum(to_nanos(getattr(m, field)) for m in rows)

    revenue, margin = total("revenue"), total("margin")
    return MarginTotals(
        customers=len(rows),
        revenue=from_nanos(revenue),
        ai_cost=from_nanos(total("ai_cost")),
        fees=from_nanos(total("fees")),
        infra=from_nanos(total("infra")),
        margin=from_nanos(margin),
        margin_pct=_pct(margin, revenue),
        unpriced_calls=sum(m.unpriced_calls for m in rows),
    )


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


# --- per plan --------------------------------------------------------------------------------


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
    books = _books(terms, plans, attribution, start, end, revenue_lines, fee_pct, infra_per_month)
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

        def total(field: str, segments: list[_Segment] = segments) -> int:
            return sum(getattr(s, field) for s in segments)

        revenue, ai_cost, infra = total("revenue"), total("ai_cost"), total("infra")
        margin = total("margin")
        customer_months = sum((s.customer_months for s in segments), Fraction(0))
        seat_months = sum((s.seat_months for s in segments), Fraction(0))
        plan = plans.get(name) if name is not None else None
        included = plan.included_usage if plan is not None else None
        allowance = None
        if included and customer_months:
            allowance = _pct(Fraction(ai_cost, NANOS_PER_DOLLAR) / customer_months, included)
        profitable = sum(1 for s in segments if s.margin > 0)
        result.append(
            PlanMargin(
                plan=name,
                active_customers=n,
                customer_months=customer_months,
                seat_months=seat_months,
                revenue=from_nanos(revenue),
                ai_cost=from_nanos(ai_cost),
                fees=from_nanos(total("fees")),
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
                unpriced_calls=total("unpriced_calls"),
            )
        )
    return result


# --- calculators -----------------------------------------------------------------------------


class UsageLine(NamedTuple):
    """One feature of a hypothetical customer: ``input_tokens`` per call is all input, and
    ``cached_input_tokens`` the part of it read from the provider's cache (the project's token
    semantics)."""

    feature: str
    model: str
    provider: str
    calls_per_day: Number | float
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int = 0


@dataclass(frozen=True)
class LineEstimate:
    line: UsageLine
    calls_per_month: Fraction  # calls per day x 365.25 / 12
    cost_per_call: Decimal | None  # None: unpriced
    monthly_cost: Decimal | None  # None: unpriced, never $0
    version_id: int | None


@dataclass(frozen=True)
class UsageEstimate:
    """A hypothetical customer's AI cost per average month: ``total`` sums the priced lines."""

    lines: list[LineEstimate]
    total: Decimal

    @property
    def unpriced(self) -> list[LineEstimate]:
        return [e for e in self.lines if e.monthly_cost is None]

    @property
    def complete(self) -> bool:
        """Every line is priced (else ``total`` leaves the unpriced ones out)."""
        return not self.unpriced

    @property
    def unpriced_calls_per_month(self) -> Fraction:
        return sum((e.calls_per_month for e in self.unpriced), Fraction(0))


def monthly_cost(lines: Iterable[UsageLine], book: PriceBook, at: datetime) -> UsageEstimate:
    """The AI cost of a hypothetical customer's average month.

    Each line's call is priced with ``book`` at ``at`` (the engine's cost of one call, to the
    nano-dollar); a month is calls per day x 365.25 / 12 days, exactly as a Fraction, and each
    line's monthly cost is rounded half-even to the nano-dollar once. A model the book cannot
    price is reported unpriced, never as $0, and left out of the total.
    """
    estimates = []
    total = 0
    for raw in lines:
        line = UsageLine(*raw)
        if not 0 <= line.cached_input_tokens <= line.input_tokens:
            raise ValueError(
                f"{line.feature}: cached input tokens are part of the input tokens"
                f" ({line.cached_input_tokens} > {line.input_tokens})"
            )
        calls = _exact(line.calls_per_day) * AVERAGE_MONTH_DAYS
        usage = {
            "input_tokens": line.input_tokens,
            "output_tokens": line.output_tokens,
            "cache_read_tokens": line.cached_input_tokens,
        }
        quote = book.quote(line.provider, line.model, at, usage)
        monthly = None
        if quote.cost is not None:
            nanos = _nanos(Fraction(quote.cost) * calls)
            total += nanos
            monthly = from_nanos(nanos)
        estimates.append(LineEstimate(line, calls, quote.cost, monthly, quote.version_id))
    return UsageEstimate(estimates, from_nanos(total))


@dataclass(frozen=True)
class PlanFit:
    """A hypothetical customer's month on one plan."""

    plan: str
    seats: int
    revenue: Decimal
    ai_cost: Decimal
    fees: Decimal
    infra: Decimal
    margin: Decimal
    margin_pct: Decimal | None
    allowance_used_pct: Decimal | None  # AI cost / the plan's included_usage x 100
    break_even_price: Decimal | None  # per seat and month
    complete: bool  # False: the AI cost leaves unpriced usage out


def plan_fits(
    usage: UsageEstimate | Decimal,
    plans: Mapping[str, Plan],
    seats: int = 1,
    fee_pct: Number = 0,
    infra_per_month: Number = 0,
    discount_pct: Number = 0,
) -> list[PlanFit]:
    """The margin of one whole month of a hypothetical customer (its monthly AI cost: an
    estimate or an amount) on each plan, with ``seats`` seats and ``discount_pct``: revenue as
    in ``term_revenue`` for a whole month, fees and infra as in ``customer_margins``."""
    if isinstance(usage, UsageEstimate):
        cost, complete = to_nanos(usage.total), usage.complete
    else:
        cost, complete = to_nanos(usage), True
    fits = []
    for name, plan in plans.items():
        revenue = _nanos(_monthly_charge(plan, seats, discount_pct, None))
        fees = round(_exact(fee_pct) * revenue / 100)  # in nanos, half-even
        infra = _nanos(_exact(infra_per_month))
        margin = revenue - cost - fees - infra
        fits.append(
            PlanFit(
                plan=name,
                seats=seats,
                revenue=from_nanos(revenue),
                ai_cost=from_nanos(cost),
                fees=from_nanos(fees),
                infra=from_nanos(infra),
                margin=from_nanos(margin),
                margin_pct=_pct(margin, revenue),
                allowance_used_pct=_pct(Fraction(cost, NANOS_PER_DOLLAR), plan.included_usage)
                if plan.included_usage
                else None,
                break_even_price=price_for_margin(
                    from_nanos(cost), from_nanos(infra), fee_pct, 0, seats
                ),
                complete=complete,
            )
        )
    return fits


@dataclass(frozen=True)
class LifetimeValue:
    value: Decimal | None  # monthly margin / churn, to the nano-dollar
    expected_months: Decimal | None  # 1 / churn, to 0.01 month
    reason: str | None  # why there is no value


def lifetime_value(monthly_margin: Number, monthly_churn_pct: Number) -> LifetimeValue:
    """LTV = monthly margin / monthly churn (``monthly_churn_pct`` percent of customers leave each
    month, so a customer stays 100 / churn months on average), rounded half-even to the
    nano-dollar. No churn: no finite value (None, with the reason). A negative margin gives a
    negative value: the customer loses that much over its life."""
    churn = _exact(monthly_churn_pct) / 100
    if not 0 <= churn <= 1:
        raise ValueError(f"a monthly churn is between 0 and 100 %, not {monthly_churn_pct}")
    if churn == 0:
        return LifetimeValue(None, None, "no churn: a customer who never leaves has no finite LTV")
    months = 1 / churn
    return LifetimeValue(
        from_nanos(_nanos(_exact(monthly_margin) * months)),
        Decimal(round(months * 100)).scaleb(-2),
        None,
    )


@dataclass(frozen=True)
class WeekCost:
    """One ISO week: the AI cost of its active users (those with calls that week)."""

    year: int  # ISO year
    week: int  # ISO week
    monday: date
    active_users: int
    cost: Decimal  # of the active users' calls, priced ones
    cost_per_user: Decimal | None  # None: no active user
    unpriced_calls: int
    unattributed_cost: Decimal  # calls without a user id: in no user's cost
    unattributed_unpriced_calls: int


def cost_per_active_user_by_week(costs: Iterable[CostRow]) -> list[WeekCost]:
    """Per ISO week (Monday to Sunday), from per-(user, day) rows (user_id, day, cost in
    nano-dollars, unpriced calls): the users with a row that week are its active users (a row
    means calls, priced at $0 or unpriced ones included), their exact cost / their number,
    rounded half-even to the nano-dollar. Rows without a user id are reported apart. Weeks
    without rows are not listed."""
    weeks: dict[tuple[int, int], dict[str, Any]] = {}
    for user, day, nanos, unpriced in costs:
        iso = day.isocalendar()
        week = weeks.setdefault(
            (iso.year, iso.week), {"users": set(), "cost": 0, "unpriced": 0, "none": 0, "none_u": 0}
        )
        if user is None:
            week["none"] += nanos
            week["none_u"] += unpriced
            continue
        week["users"].add(user)
        week["cost"] += nanos
        week["unpriced"] += unpriced
    result = []
    for (year, number), week in sorted(weeks.items()):
        users = len(week["users"])
        result.append(
            WeekCost(
                year=year,
                week=number,
                monday=date.fromisocalendar(year, number, 1),
                active_users=users,
                cost=from_nanos(week["cost"]),
                cost_per_user=from_nanos(_nanos(Fraction(week["cost"], users * NANOS_PER_DOLLAR)))
                if users
                else None,
                unpriced_calls=week["unpriced"],
                unattributed_cost=from_nanos(week["none"]),
                unattributed_unpriced_calls=week["none_u"],
            )
        )
    return result
