"""The page's calculators: a hypothetical customer's cost and plan fits, LTV, cost per user."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import TYPE_CHECKING, Any, NamedTuple

from dashboard.economics.accounts import Plan
from dashboard.economics.money import AVERAGE_MONTH_DAYS, CostRow, Number, _exact, _nanos, _pct
from dashboard.economics.plans import price_for_margin
from dashboard.economics.revenue import _monthly_charge
from tracking.sqltypes import NANOS_PER_DOLLAR, from_nanos, to_nanos

if TYPE_CHECKING:
    from tracking.pricing import PriceBook


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
    return [
        _week_cost(
            date.fromisocalendar(year, number, 1),
            len(week["users"]),
            week["cost"],
            week["unpriced"],
            week["none"],
            week["none_u"],
        )
        for (year, number), week in sorted(weeks.items())
    ]


def _week_cost(
    monday: date, users: int, cost: int, unpriced: int, none: int, none_unpriced: int
) -> WeekCost:
    """A week's figures from its sums in nano-dollars (the one place they are rounded)."""
    iso = monday.isocalendar()
    return WeekCost(
        year=iso.year,
        week=iso.week,
        monday=monday,
        active_users=users,
        cost=from_nanos(cost),
        cost_per_user=from_nanos(_nanos(Fraction(cost, users * NANOS_PER_DOLLAR)))
        if users
        else None,
        unpriced_calls=unpriced,
        unattributed_cost=from_nanos(none),
        unattributed_unpriced_calls=none_unpriced,
    )


# Week numbers counted from this Monday: ``week_number(day)`` is the same for a Monday to Sunday.
EPOCH_MONDAY = date(2000, 1, 3)
MASK_WEEKS = 63  # weeks a signed 64-bit mask holds


def week_number(day: date) -> int:
    """The week holding ``day``, counted in whole weeks from ``EPOCH_MONDAY``."""
    return (day - EPOCH_MONDAY).days // 7


def weeks_from_masks(
    first_week: int,
    masks: Iterable[int],
    sums: Mapping[int, tuple[int, int]],
    unattributed: Mapping[int, tuple[int, int]],
) -> list[WeekCost]:
    """``cost_per_active_user_by_week`` from sums a store can make without a row per user and
    week: each user id's ``masks`` (bit k set: active in week ``first_week + k``), and per
    week number the (nano-dollars, unpriced calls) of all calls (``sums``) and of the calls
    without a user id (``unattributed``, which ``sums`` includes). Weeks without calls are not
    listed, as there."""
    active: dict[int, int] = {}
    for mask in masks:
        while mask:
            low = mask & -mask
            week = first_week + low.bit_length() - 1
            active[week] = active.get(week, 0) + 1
            mask ^= low
    result = []
    for week in sorted(set(sums) | set(active)):
        cost, unpriced = sums.get(week, (0, 0))
        none, none_unpriced = unattributed.get(week, (0, 0))
        monday = EPOCH_MONDAY + timedelta(weeks=week)
        users = active.get(week, 0)
        result.append(_week_cost(monday, users, cost - none, unpriced - none_unpriced, none,
                                 none_unpriced))  # fmt: skip
    return result
