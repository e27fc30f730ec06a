"""The demo's accounts: plans, customers and revenue that fit the demo calls.

Every demo user (``user_0001``, tagged with its plan: free, pro or team) belongs to one customer:
a free or pro user is a customer of its own, team users are grouped into companies of two to
five seats. Some customers signed up during the period and call only from that day on, and
some churned during it and call no more after their last day (``activity`` is what the calls'
generator reads); a few pro customers came from the free plan or the retired starter plan
before the period. Some pro and team customers have a discount, a few teams a custom monthly
price, and teams pay for usage above what their plan includes: one revenue line a month.

The customers are drawn from their own generator (seeded like the calls), so adding accounts
left the calls' other draws as they were; a customer's seats are the users that made calls.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from decimal import Decimal

import numpy as np

from dashboard.accounts import Accounts
from dashboard.economics import Plan, RevenueLine, Term

OFFERED_FROM = date(2023, 1, 1)
STARTER_RETIRED = date(2025, 6, 30)
PLANS = {
    "free": Plan("free", Decimal(0), "month", Decimal("0.50"), OFFERED_FROM),
    "pro": Plan("pro", Decimal(20), "month", Decimal(10), OFFERED_FROM),
    "team": Plan("team", Decimal(30), "month", Decimal(40), OFFERED_FROM),  # per seat
    # the old entry plan: its customers moved to pro before the period
    "starter": Plan("starter", Decimal(9), "month", Decimal(3), OFFERED_FROM, STARTER_RETIRED),
}
COMPANIES = (
    "Northwind",
    "Globex",
    "Initech",
    "Hooli",
    "Umbrella",
    "Soylent",
    "Tyrell",
    "Wonka",
    "Cyberdyne",
    "Aperture",
    "Vandelay",
    "Stark",
)
INCLUDED_CALLS = 300  # a team's month includes this many calls; each one more is billed
PER_EXTRA_CALL = Decimal("0.01")
DISCOUNTS = (Decimal(10), Decimal(15), Decimal(20), Decimal(25))
D0 = Decimal(0)


@dataclass(frozen=True)
class DemoCustomer:
    customer_id: str
    name: str
    plan: str  # its users' plan tag
    users: tuple[int, ...]  # user indexes (user_0007 is 7)
    signup: date
    first_day: int = 0  # the period's day its users begin to call (0: signed up before)
    last_day: int | None = None  # the period's day its users last call: churned that day
    earlier_plan: str | None = None  # its plan until ``switched``, before the period
    switched: date | None = None
    discount_pct: Decimal = Decimal(0)
    custom_price: Decimal | None = None  # dollars a month for the whole team


def user_id(ix: int) -> str:
    return f"user_{ix:04d}"


def customers_for(
    plan_of_user: np.ndarray, tags: Sequence[str], start: date, days: int, rng: np.random.Generator
) -> tuple[DemoCustomer, ...]:
    """The customers of users whose plan tags are ``tags[plan_of_user[ix]]``, for a period of
    ``days`` days from ``start``. The busiest tenth of the users never churn or join late (the
    demo's top users stay the same)."""
    n = len(plan_of_user)
    steady = max(3, n // 10)
    found: list[DemoCustomer] = []
    team = [ix for ix in range(n) if tags[plan_of_user[ix]] == "team"]
    for ix in range(n):
        tag = tags[plan_of_user[ix]]
        if tag != "team":
            found.append(_customer(f"cus_{ix:04d}", user_id(ix), tag, (ix,), start, rng))
    at = k = 0
    while at < len(team):
        size = int(rng.integers(2, 6))
        name = COMPANIES[k % len(COMPANIES)]
        name += f" {k // len(COMPANIES) + 1}" if k >= len(COMPANIES) else ""
        members = tuple(team[at : at + size])
        found.append(_customer(f"team_{k + 1:02d}", name, "team", members, start, rng))
        at += size
        k += 1
    found = _with_each_kind([_varied(c, start, rng) for c in found], start, rng)
    movable = [i for i, c in enumerate(found) if min(c.users) >= steady]
    if days >= 6 and movable:
        picked = rng.permutation(movable)
        churned = max(1, round(0.12 * len(found)))
        late = max(1, round(0.08 * len(found)))
        for i in picked[:churned]:
            found[i] = replace(found[i], last_day=int(rng.integers(days // 3, days - 2)))
        for i in picked[churned : churned + late]:
            first = int(rng.integers(1, days // 2))
            joined = start + timedelta(days=first)
            found[i] = replace(
                found[i], first_day=first, signup=joined, earlier_plan=None, switched=None
            )
    return tuple(found)


def _customer(
    customer_id: str,
    name: str,
    plan: str,
    users: tuple[int, ...],
    start: date,
    rng: np.random.Generator,
) -> DemoCustomer:
    signup = start - timedelta(days=int(rng.integers(20, 700)))
    return DemoCustomer(customer_id, name, plan, users, signup)


def _varied(c: DemoCustomer, start: date, rng: np.random.Generator) -> DemoCustomer:
    """Upgrades before the period, discounts and team contracts."""
    draw = rng.random(3)
    after = int(rng.integers(14, 60))
    if c.plan == "pro" and draw[0] < 0.3 and c.signup + timedelta(days=after) < start:
        switched = c.signup + timedelta(days=after)
        earlier = "starter" if switched <= STARTER_RETIRED else "free"
        c = replace(c, earlier_plan=earlier, switched=switched)
    if c.plan in ("pro", "team") and draw[1] < 0.15:
        c = replace(c, discount_pct=DISCOUNTS[int(rng.integers(0, len(DISCOUNTS)))])
    elif c.plan == "team" and draw[2] < 0.3:
        # a contract: three quarters of the list price for its seats, in whole dollars
        monthly = PLANS["team"].price * len(c.users) * 3 / 4
        c = replace(c, custom_price=monthly.to_integral_value())
    return c


def _with_each_kind(
    found: list[DemoCustomer], start: date, rng: np.random.Generator
) -> list[DemoCustomer]:
    """However few the users, a demo shows an upgrade, a discount and a team contract when it
    has a pro customer and a team (the last ones get them, away from the busiest users)."""
    pro = [i for i, c in enumerate(found) if c.plan == "pro"]
    teams = [i for i, c in enumerate(found) if c.plan == "team"]
    paying = pro + teams
    if pro and not any(found[i].earlier_plan for i in pro):
        i = pro[-1]
        switched = min(found[i].signup + timedelta(days=30), start - timedelta(days=1))
        if switched > found[i].signup:
            earlier = "starter" if switched <= STARTER_RETIRED else "free"
            found[i] = replace(found[i], earlier_plan=earlier, switched=switched)
    if teams and not any(found[i].custom_price for i in teams):
        i = teams[-1]
        monthly = PLANS["team"].price * len(found[i].users) * 3 / 4
        found[i] = replace(found[i], custom_price=monthly.to_integral_value(), discount_pct=D0)
    if paying and not any(found[i].discount_pct for i in paying):
        plain = [i for i in paying if found[i].custom_price is None]
        if plain:
            pick = DISCOUNTS[int(rng.integers(len(DISCOUNTS)))]
            found[plain[-1]] = replace(found[plain[-1]], discount_pct=pick)
    return found


def activity(customers: Sequence[DemoCustomer], n_users: int, days: int) -> np.ndarray:
    """users x days: whether the user may call that day (signed up and not churned yet)."""
    active = np.ones((n_users, days), dtype=bool)
    for c in customers:
        for ix in c.users:
            active[ix, : c.first_day] = False
            if c.last_day is not None:
                active[ix, c.last_day + 1 :] = False
    return active


def accounts_for(
    customers: Sequence[DemoCustomer],
    start: date,
    today: date,
    calls: Mapping[int, Mapping[date, int]],
) -> Accounts:
    """The plans, terms, user ids and usage revenue of the customers whose users called.
    ``calls``: user index -> first day of a month -> that user's calls in the month."""
    terms: list[Term] = []
    users: dict[str, str] = {}
    revenue: dict[str, RevenueLine] = {}
    for c in customers:
        callers = [ix for ix in c.users if calls.get(ix)]
        if not callers:
            continue  # a user without calls is no demo user
        seats = len(callers) if c.plan == "team" else 1
        end = start + timedelta(days=c.last_day) if c.last_day is not None else None
        current = c.switched if c.earlier_plan is not None and c.switched else c.signup
        if c.earlier_plan is not None:
            terms.append(
                Term(c.customer_id, c.name, c.earlier_plan, c.signup, current - timedelta(1), seats)
            )
        terms.append(
            Term(
                c.customer_id,
                c.name,
                c.plan,
                current,
                end,
                seats,
                c.discount_pct,
                c.custom_price,
            )
        )
        users |= {user_id(ix): c.customer_id for ix in callers}
        if c.plan == "team":
            revenue |= _usage(c, callers, max(start, c.signup), end or today, calls)
    return Accounts(
        dict(PLANS), sorted(terms, key=lambda t: (t.customer_id, t.start)), users, revenue
    )


def _usage(
    c: DemoCustomer,
    callers: Sequence[int],
    first: date,
    last: date,
    calls: Mapping[int, Mapping[date, int]],
) -> dict[str, RevenueLine]:
    """A team's usage revenue: each month's calls above the included ones."""
    months: dict[date, int] = {}
    for ix in callers:
        for month, count in calls[ix].items():
            months[month] = months.get(month, 0) + count
    found: dict[str, RevenueLine] = {}
    for month, count in sorted(months.items()):
        extra = count - INCLUDED_CALLS
        if extra <= 0:
            continue
        following = (month + timedelta(days=32)).replace(day=1)
        line = RevenueLine(
            c.customer_id,
            max(month, first),
            min(following - timedelta(days=1), last),
            extra * PER_EXTRA_CALL,
            f"usage: {count:,} calls, {extra:,} above the {INCLUDED_CALLS} included",
        )
        found[f"demo-usage-{c.customer_id}-{month:%Y-%m}"] = line
    return found
