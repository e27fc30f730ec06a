"""The pure margin calculations of Users & margins, computed by hand: every expected figure is
worked out in the comment beside it (exact decimals; `...` marks where a figure is rounded
half-even to the nano-dollar, or to 0.01 for a percentage)."""

from __future__ import annotations

import calendar
import dataclasses
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest

from dashboard.economics import (
    AVERAGE_MONTH_DAYS,
    AICost,
    CustomerMargin,
    Plan,
    RevenueLine,
    Term,
    UsageLine,
    attribute_costs,
    below_margin,
    cost_per_active_user_by_week,
    customer_margins,
    customer_revenue,
    lifetime_value,
    line_revenue,
    margin_percentiles,
    margin_totals,
    monthly_cost,
    percentile,
    plan_fits,
    plan_margins,
    price_for_margin,
    term_revenue,
    unprofitable,
)
from dashboard.economics.attribution import _spans
from dashboard.economics.calculators import week_number, weeks_from_masks
from dashboard.economics.revenue import _term_pieces, term_monthly_charge
from tracking.pricing import PriceBook, PriceVersion, Rate

D = Decimal
PRO = Plan("pro", D("30"), included_usage=D("10"))  # $30 per seat and month, $10 of AI included
TEAM = Plan("team", D("20"))  # $20 per seat and month
ANNUAL = Plan("annual", D("120"), period="year")  # $10 a month
PLANS = {"pro": PRO, "team": TEAM, "annual": ANNUAL}
APR1, APR30 = date(2026, 4, 1), date(2026, 4, 30)  # April 2026: 30 days


def nanos(dollars: str) -> int:
    return int(D(dollars) * 1_000_000_000)


# --- 1. revenue of a term --------------------------------------------------------------------


def test_a_whole_month_earns_the_monthly_price() -> None:
    term = Term("c1", "Acme", "pro", date(2026, 1, 1))
    assert term_revenue(term, PLANS, APR1, APR30) == D("30")  # 30 x 30/30


def test_a_term_starting_mid_month_earns_its_days() -> None:
    term = Term("c1", "Acme", "pro", date(2026, 4, 16))
    # April 16..30 is 15 of April's 30 days: 30 x 15/30 = 15
    assert term_revenue(term, PLANS, APR1, APR30) == D("15")


def test_each_month_piece_is_prorated_by_its_own_length_and_rounded() -> None:
    term = Term("c1", "Acme", "pro", date(2026, 1, 20), date(2026, 3, 10))
    # Jan 20..31: 30 x 12/31 = 11.6129032258... -> 11.612903226
    # Feb 2026 (28 days, all): 30
    # Mar 1..10: 30 x 10/31 = 9.6774193548... -> 9.677419355
    # 11.612903226 + 30 + 9.677419355 = 51.290322581
    revenue = term_revenue(term, PLANS, date(2026, 1, 1), date(2026, 3, 31))
    assert revenue == D("51.290322581")
    assert revenue.as_tuple().exponent == -9


def test_a_term_on_its_last_day_earns_one_day() -> None:
    term = Term("c1", "Acme", "pro", date(2025, 6, 1), date(2026, 1, 1))
    # Jan 1 only: 30 x 1/31 = 0.96774193548... -> 0.967741935
    assert term_revenue(term, PLANS, date(2026, 1, 1), date(2026, 1, 31)) == D("0.967741935")
    assert term_revenue(term, PLANS, date(2026, 2, 1), date(2026, 2, 28)) == 0


def test_seats_and_discount() -> None:
    term = Term("c1", "Acme", "team", date(2026, 1, 1), seats=3, discount_pct=D("10"))
    # 20 x 3 seats = 60, less 10 % = 54
    assert term_revenue(term, PLANS, APR1, APR30) == D("54")


def test_a_custom_price_is_the_whole_customers_monthly_price() -> None:
    term = Term(
        "c1", "Acme", "team", date(2026, 6, 16), seats=5, discount_pct=D("10"), custom_price=D(75)
    )
    # seats and discount do not apply: June 16..30 is 15 of 30 days: 75 x 15/30 = 37.5
    assert term_revenue(term, PLANS, date(2026, 6, 1), date(2026, 6, 30)) == D("37.5")


def test_annual_plans_are_recognised_monthly() -> None:
    term = Term("c1", "Acme", "annual", date(2026, 1, 1))
    # 120 / 12 = 10 a month: February (all 28 days) earns 10, January 1..10 earns 10 x 10/31
    assert term_revenue(term, PLANS, date(2026, 2, 1), date(2026, 2, 28)) == D("10")
    hundred = {"annual": Plan("annual", D("100"), period="year")}
    # 100 / 12 = 8.3333... a month, exactly (a Fraction): x 10/31 = 1000/372 = 2.68817204301...
    # -> 2.688172043
    assert term_revenue(term, hundred, date(2026, 1, 1), date(2026, 1, 10)) == D("2.688172043")
    forty = {"annual": Plan("annual", D("40"), period="year")}
    # 40 / 12 = 3.3333... a month; each (term, month) piece rounds on its own, as three monthly
    # invoices would: 3.333333333 x 3 = 9.999999999 for January to March, not 10
    assert term_revenue(term, forty, date(2026, 1, 1), date(2026, 3, 31)) == D("9.999999999")


def test_no_plan_or_an_unknown_plan_earns_nothing_but_a_custom_price_still_counts() -> None:
    assert term_revenue(Term("c1", "A", None, date(2026, 1, 1)), PLANS, APR1, APR30) == 0
    assert term_revenue(Term("c1", "A", "gold", date(2026, 1, 1)), PLANS, APR1, APR30) == 0
    bespoke = Term("c1", "A", None, date(2026, 1, 1), custom_price=D(50))
    assert term_revenue(bespoke, PLANS, APR1, APR30) == D("50")  # 50 x 30/30


def test_a_period_ending_before_it_starts_is_an_error() -> None:
    with pytest.raises(ValueError, match="before it starts"):
        term_revenue(Term("c1", "A", "pro", APR1), PLANS, APR30, APR1)


def test_three_thirds_never_drift() -> None:
    term = Term("c1", "A", None, date(2026, 1, 1), custom_price=D(10))
    thirds = [(APR1, date(2026, 4, 10)), (date(2026, 4, 11), date(2026, 4, 20)),
              (date(2026, 4, 21), APR30)]  # fmt: skip
    # each 10 days of 30: 10 x 10/30 = 3.3333... -> 3.333333333, the same every time
    pieces = [term_revenue(term, PLANS, a, b) for a, b in thirds]
    assert pieces == [D("3.333333333")] * 3
    assert sum(pieces) == D("9.999999999")  # exact sum of what each period reported
    assert term_revenue(term, PLANS, APR1, APR30) == D("10")  # one piece: exactly 10


# --- revenue lines and a customer's revenue ---------------------------------------------------


def test_a_revenue_line_is_prorated_by_its_overlap_with_the_period() -> None:
    line = RevenueLine("c1", date(2026, 1, 1), date(2026, 1, 31), D("31"))
    # Jan 16..31 is 16 of the line's 31 days: 31 x 16/31 = 16
    assert line_revenue(line, date(2026, 1, 16), date(2026, 2, 15)) == D("16")
    across = RevenueLine("c1", date(2025, 12, 20), date(2026, 1, 9), D("10"))  # 21 days
    # Jan 1..9 is 9 of 21 days: 10 x 9/21 = 4.2857142857... -> 4.285714286
    assert line_revenue(across, date(2026, 1, 1), date(2026, 1, 31)) == D("4.285714286")
    assert line_revenue(across, date(2026, 2, 1), date(2026, 2, 28)) == 0
    one_off = RevenueLine("c1", date(2026, 4, 7), date(2026, 4, 7), D("99.95"))
    assert line_revenue(one_off, APR1, APR30) == D("99.95")
    with pytest.raises(ValueError, match="ends before it starts"):
        line_revenue(RevenueLine("c1", APR30, APR1, D(1)), APR1, APR30)


def test_a_customers_revenue_is_its_terms_and_its_lines() -> None:
    terms = [
        Term("c1", "Acme", "pro", date(2026, 1, 1), date(2026, 4, 10)),
        Term("c1", "Acme", "team", date(2026, 4, 11), seats=2),
        Term("c2", "Other", "pro", date(2026, 1, 1)),
    ]
    lines = [
        RevenueLine("c1", date(2026, 3, 27), date(2026, 4, 5), D("20")),
        RevenueLine("c2", APR1, APR30, D("1000")),
    ]
    # pro Apr 1..10: 30 x 10/30 = 10; team Apr 11..30: 20 x 2 x 20/30 = 26.6666... -> 26.666666667
    # line Mar 27..Apr 5 (10 days), Apr 1..5 in the period: 20 x 5/10 = 10
    # 10 + 26.666666667 + 10 = 46.666666667 (c2's term and line are not c1's)
    assert customer_revenue("c1", terms, PLANS, APR1, APR30, lines) == D("46.666666667")


# --- 2. AI cost attribution ------------------------------------------------------------------


def test_costs_go_to_the_customer_active_that_day_and_the_rest_to_no_plan() -> None:
    terms = [
        Term("acme", "Acme", "pro", date(2026, 3, 10)),
        Term("beta", "Beta", None, date(2026, 3, 1)),  # a customer on no plan
    ]
    users = {"acme": ["u1", "u2"], "beta": ["u3"], "gamma": ["u5"]}  # gamma has no term
    costs = [
        ("u1", date(2026, 3, 5), 1_000, 1),  # before acme started: no plan
        ("u1", date(2026, 3, 10), 2_000, 0),  # acme's first day
        ("u2", date(2026, 3, 20), 3_000, 2),
        ("u3", date(2026, 3, 2), 4_000, 0),  # beta, on no plan: still beta's
        ("u4", date(2026, 3, 3), 5_000, 1),  # mapped to no customer: no plan
        ("u5", date(2026, 3, 3), 6_000, 0),  # a customer without any term: no plan
        (None, date(2026, 3, 3), 7_000, 3),  # no user id: no plan, not a user
        ("u1", date(2026, 4, 1), 8_000, 0),  # after the period: ignored
        ("u2", date(2026, 2, 28), 9_000, 0),  # before it: ignored
    ]
    got = attribute_costs(costs, users, terms, date(2026, 3, 1), date(2026, 3, 31))
    # acme: 2,000 + 3,000 = 5,000 nanos with 0 + 2 unpriced; beta: 4,000
    assert got.customers == {"acme": AICost(D("0.000005"), 2), "beta": AICost(D("0.000004"), 0)}
    assert got.by_plan == {"acme": {"pro": AICost(D("0.000005"), 2)},
                           "beta": {None: AICost(D("0.000004"), 0)}}  # fmt: skip
    # 1,000 + 5,000 + 6,000 + 7,000 = 19,000 nanos; unpriced 1 + 1 + 0 + 3 = 5; users u1, u4, u5
    assert got.no_plan == AICost(D("0.000019"), 5)
    assert got.no_plan_users == 3


def test_a_plan_change_splits_a_customers_cost_by_day() -> None:
    terms = [
        Term("c1", "Acme", "pro", date(2026, 1, 1), date(2026, 1, 15)),
        Term("c1", "Acme", "team", date(2026, 1, 16)),
    ]
    costs = [("u1", date(2026, 1, 15), 100, 0), ("u1", date(2026, 1, 16), 20, 1)]
    got = attribute_costs(costs, {"c1": ["u1"]}, terms, date(2026, 1, 1), date(2026, 1, 31))
    assert got.customers["c1"] == AICost(D("0.00000012"), 1)  # 100 + 20 nanos
    assert got.by_plan["c1"] == {"pro": AICost(D("0.0000001"), 0), "team": AICost(D("2E-8"), 1)}


def test_overlaps_go_to_the_term_or_customer_that_started_last() -> None:
    terms = [
        Term("c1", "One", "pro", date(2026, 1, 1)),
        Term("c1", "One", "team", date(2026, 1, 10), date(2026, 1, 20)),  # overlaps pro
        Term("c2", "Two", "pro", date(2026, 1, 12)),
    ]
    users = {"c1": ["u1", "shared"], "c2": ["shared"]}
    costs = [
        ("u1", date(2026, 1, 9), 1, 0),  # pro alone
        ("u1", date(2026, 1, 10), 10, 0),  # team started later: team
        ("u1", date(2026, 1, 21), 100, 0),  # team over: pro again
        ("shared", date(2026, 1, 11), 1_000, 0),  # only c1 active: c1 (team)
        ("shared", date(2026, 1, 12), 10_000, 0),  # c2's term started last: c2
    ]
    got = attribute_costs(costs, users, terms, date(2026, 1, 1), date(2026, 1, 31))
    assert got.by_plan["c1"] == {"pro": AICost(D("1.01E-7")), "team": AICost(D("0.00000101"))}
    assert got.customers["c2"] == AICost(D("0.00001"))
    assert got.no_plan == AICost() and got.no_plan_users == 0


def test_costs_attributed_for_another_period_are_refused() -> None:
    got = attribute_costs([], {}, [], APR1, APR30)
    with pytest.raises(ValueError, match="attributed for"):
        customer_margins([], PLANS, got, APR1, date(2026, 4, 29))


# --- 3. per-customer margins: one April, five customers --------------------------------------

SCENARIO_TERMS = [
    Term("acme", "Acme", "pro", date(2026, 1, 1)),
    Term("beta", "Beta", "team", date(2026, 4, 16), seats=3, discount_pct=D("10")),
    Term("gamma", "Gamma", None, date(2026, 3, 1)),  # on no plan
    Term("delta", "Delta", "pro", date(2026, 2, 1), date(2026, 4, 10)),  # then a plan change
    Term("delta", "Delta", "team", date(2026, 4, 11), seats=2),
    Term("zeta", "Zeta", "pro", date(2026, 1, 1), date(2026, 3, 31)),  # left before April
]
SCENARIO_USERS = {"acme": ["u1"], "beta": ["u3"], "gamma": ["u2"], "delta": ["u4"]}
SCENARIO_COSTS = [
    ("u1", date(2026, 4, 2), nanos("12"), 0),
    ("u3", date(2026, 4, 10), nanos("2"), 0),  # before beta started: no plan
    ("u3", date(2026, 4, 20), nanos("5"), 4),  # and 4 unpriced calls
    ("u2", date(2026, 4, 3), nanos("3"), 0),
    ("u4", date(2026, 4, 5), nanos("1"), 0),  # delta on pro
    ("u4", date(2026, 4, 25), nanos("2"), 0),  # delta on team
    ("u9", date(2026, 4, 25), nanos("0.5"), 0),  # nobody's user: no plan
]
SCENARIO_LINES = [
    RevenueLine("delta", date(2026, 4, 9), date(2026, 4, 11), D("9")),  # 2 days pro, 1 team
    RevenueLine("epsilon", date(2026, 3, 27), date(2026, 4, 5), D("20")),  # no term at all
]
FEE, INFRA = D("3"), D("1.5")  # 3 % payment fee; $1.50 per customer and month


def scenario() -> list[CustomerMargin]:
    costs = attribute_costs(SCENARIO_COSTS, SCENARIO_USERS, SCENARIO_TERMS, APR1, APR30)
    # no plan: u3's 2 + u9's 0.5 = 2.5, from 2 users
    assert (costs.no_plan, costs.no_plan_users) == (AICost(D("2.5")), 2)
    return customer_margins(SCENARIO_TERMS, PLANS, costs, APR1, APR30, SCENARIO_LINES, FEE, INFRA)


def test_customer_margins_by_hand() -> None:
    got = {m.customer_id: m for m in scenario()}
    assert list(got) == ["acme", "beta", "delta", "epsilon", "gamma"]  # zeta left in March
    # acme: 30 - 12 - 3 % of 30 (0.9) - 1.5 = 15.6; 15.6 / 30 = 52.00 %
    assert got["acme"] == CustomerMargin(
        "acme", "Acme", "pro", D(30), D(12), D("0.9"), D("1.5"), D("15.6"), D("52.00"), 0, 30
    )
    # beta: 20 x 3 x 0.9 = 54 a month, 15 days of 30: 27; AI 5 (the 2 before it started are
    # not its own); fee 0.81; infra 1.5 x 15/30 = 0.75; 27 - 5 - 0.81 - 0.75 = 20.44;
    # 20.44 / 27 = 75.7037...% -> 75.70; the 4 unpriced calls carried
    assert got["beta"] == CustomerMargin(
        "beta", "Beta", "team", D(27), D(5), D("0.81"), D("0.75"), D("20.44"), D("75.70"), 4, 15
    )
    # gamma, cost but no plan: 0 - 3 - 0 - 1.5 = -4.5, no margin % without revenue
    assert got["gamma"] == CustomerMargin(
        "gamma", "Gamma", None, D(0), D(3), D(0), D("1.5"), D("-4.5"), None, 0, 30
    )
    # delta: pro Apr 1..10: 30 x 10/30 = 10; team Apr 11..30: 20 x 2 x 20/30 = 26.666666667...;
    # line 9 (all 3 days in April); revenue 10 + 26.666666667 + 9 = 45.666666667
    # fee 3 % of it = 1.37000000001 -> 1.37; infra 1.5 (active all 30 days); AI 1 + 2 = 3
    # margin 45.666666667 - 3 - 1.37 - 1.5 = 39.796666667; / 45.666666667 = 87.1459...% -> 87.15
    assert got["delta"] == CustomerMargin(
        "delta", "Delta", "team", D("45.666666667"), D(3), D("1.37"), D("1.5"),
        D("39.796666667"), D("87.15"), 0, 30,
    )  # fmt: skip
    # epsilon, a revenue line only (Mar 27..Apr 5, 10 days): 20 x 5/10 = 10; fee 0.3; no infra
    # without a term; 9.7, 97.00 %
    assert got["epsilon"] == CustomerMargin(
        "epsilon", "epsilon", None, D(10), D(0), D("0.3"), D(0), D("9.7"), D("97.00"), 0, 0
    )


def test_zero_revenue_and_zero_cost() -> None:
    terms = [Term("free", "Free Co", "free", APR1), Term("paid", "Paid Co", "pro", APR1)]
    plans = {**PLANS, "free": Plan("free", D(0))}
    costs = attribute_costs([], {"free": ["f"], "paid": ["p"]}, terms, APR1, APR30)
    got = {m.customer_id: m for m in customer_margins(terms, plans, costs, APR1, APR30)}
    # nothing in, nothing out: margin 0 and no margin % (no revenue to divide by)
    assert (got["free"].revenue, got["free"].margin, got["free"].margin_pct) == (0, 0, None)
    # no AI cost, no fee, no infra: all 30 is margin, 100.00 %
    assert (got["paid"].ai_cost, got["paid"].margin, got["paid"].margin_pct) == (
        0,
        D(30),
        D("100.00"),
    )


# --- 4. distribution -------------------------------------------------------------------------


def test_percentile_is_nearest_rank_on_exact_values() -> None:
    values = [D(v) for v in (7, 3, 10, 1, 5, 9, 2, 8, 4, 6)]
    # n = 10: rank ceil(p/100 x 10): p10 -> 1st, p50 -> 5th, p90 -> 9th, p95 -> 10th
    assert [percentile(values, p) for p in (10, 50, 90, 95, 100, 0)] == [1, 5, 9, 10, 10, 1]
    assert percentile([D("0.1"), D("0.2"), D("0.3")], 50) == D("0.2")  # ceil(1.5) = 2nd
    assert percentile([], 50) is None
    with pytest.raises(ValueError):
        percentile(values, 101)


def test_distribution_of_the_scenario() -> None:
    margins = scenario()
    # margins sorted: -4.5 (gamma), 9.7, 15.6, 20.44, 39.796666667; n = 5
    # p10: ceil(0.5) = 1st; p50: ceil(2.5) = 3rd; p90: ceil(4.5) = 5th
    spread = margin_percentiles(margins)
    assert (spread.p10, spread.p50, spread.p90) == (D("-4.5"), D("15.6"), D("39.796666667"))
    totals = margin_totals(margins)
    # revenue 30 + 27 + 45.666666667 + 10 + 0 = 112.666666667; AI 12 + 5 + 3 + 0 + 3 = 23
    # fees 0.9 + 0.81 + 1.37 + 0.3 = 3.38; infra 1.5 + 0.75 + 1.5 + 0 + 1.5 = 5.25
    # margin 15.6 + 20.44 + 39.796666667 + 9.7 - 4.5 = 81.036666667 (= 112.666666667 - 23
    # - 3.38 - 5.25); 81.036666667 / 112.666666667 = 71.926...% -> 71.93
    assert totals.customers == 5
    assert (totals.revenue, totals.ai_cost, totals.fees, totals.infra, totals.margin) == (
        D("112.666666667"), D(23), D("3.38"), D("5.25"), D("81.036666667"),
    )  # fmt: skip
    assert totals.margin_pct == D("71.93") and totals.unpriced_calls == 4
    assert [m.customer_id for m in unprofitable(margins)] == ["gamma"]
    # below 60 %: gamma (no revenue, negative margin) and acme (52.00); worst margin first
    assert [m.customer_id for m in below_margin(margins, 60)] == ["gamma", "acme"]
    assert [m.customer_id for m in below_margin(margins, D("52.00"))] == ["gamma"]  # not below


def test_no_customers_total_zero() -> None:
    totals = margin_totals([])
    assert (totals.customers, totals.revenue, totals.margin, totals.margin_pct) == (0, 0, 0, None)
    assert margin_percentiles([]).p50 is None


# --- 5. per plan -----------------------------------------------------------------------------


def test_plan_margins_by_hand() -> None:
    costs = attribute_costs(SCENARIO_COSTS, SCENARIO_USERS, SCENARIO_TERMS, APR1, APR30)
    got = plan_margins(
        SCENARIO_TERMS, PLANS, costs, APR1, APR30, SCENARIO_LINES, FEE, INFRA, D("50")
    )
    assert [p.plan for p in got] == ["pro", "team", "annual", None]
    pro, team, annual, none = got
    # pro: acme (all April) and delta's Apr 1..10. delta's line of 9 splits by days 2:1, 6 to
    # pro and 3 to team; its fee 1.37 by revenue 16 : 29.666666667, 0.48 and 0.89; its infra
    # 1.5 by days 10:20, 0.5 and 1. delta on pro: 16 - 1 - 0.48 - 0.5 = 14.02
    assert pro.active_customers == 2
    assert (pro.customer_months, pro.seat_months) == (Fraction(4, 3), Fraction(4, 3))  # 1 + 1/3
    assert (pro.revenue, pro.ai_cost, pro.fees, pro.infra) == (D(46), D(13), D("1.38"), D(2))
    assert pro.gross_margin == D("29.62")  # 15.6 + 14.02
    assert pro.margin_pct == D("64.39")  # 29.62 / 46 = 64.3913...%
    assert (pro.avg_ai_cost, pro.p90_ai_cost) == (D("6.5"), D(12))  # 13 / 2; rank ceil(1.8) = 2
    assert pro.allowance_used_pct == D("97.50")  # 13 / (4/3) = 9.75 a customer-month, of 10
    # break-even: (13 + 2) / ((1 - 0.03) x 4/3) = 45 / 3.88 = 11.5979381443... -> 11.597938144
    assert pro.break_even_price == D("11.597938144")
    # 50 % margin: 15 / ((1 - 0.03 - 0.5) x 4/3) = 45 / 1.88 = 23.9361702127... -> 23.936170213
    assert pro.target_price == D("23.936170213")
    assert (pro.profitable_customers, pro.profitable_pct) == (2, D("100.00"))
    # team: beta (15 days, 3 seats) and delta's Apr 11..30 (20 days, 2 seats)
    # delta on team: 26.666666667 + 3 - 2 - 0.89 - 1 = 25.776666667
    assert team.active_customers == 2
    assert team.customer_months == Fraction(7, 6)  # 15/30 + 20/30
    assert team.seat_months == Fraction(17, 6)  # 3 x 15/30 + 2 x 20/30
    assert (team.revenue, team.ai_cost, team.fees, team.infra) == (
        D("56.666666667"), D(7), D("1.70"), D("1.75"),
    )  # fmt: skip
    assert team.gross_margin == D("46.216666667")  # 20.44 + 25.776666667
    assert team.margin_pct == D("81.56")  # 46.216666667 / 56.666666667 = 81.5588...%
    assert (team.avg_ai_cost, team.p90_ai_cost, team.allowance_used_pct) == (D("3.5"), D(5), None)
    # (7 + 1.75) / (0.97 x 17/6) = 52.5 / 16.49 = 3.1837477258... -> 3.183747726
    assert team.break_even_price == D("3.183747726")
    assert team.unpriced_calls == 4
    # annual: nobody on it
    assert (annual.active_customers, annual.revenue, annual.avg_ai_cost) == (0, 0, None)
    assert (annual.break_even_price, annual.profitable_pct) == (None, None)
    # no plan: gamma, -4.5; break-even (3 + 1.5) / 0.97 = 4.6391752577... -> 4.639175258
    assert (none.active_customers, none.gross_margin, none.margin_pct) == (1, D("-4.5"), None)
    assert none.break_even_price == D("4.639175258")
    assert (none.profitable_customers, none.profitable_pct) == (0, D("0.00"))
    # exact across views: plans plus epsilon's line outside every term (9.7) = the customers'
    # 29.62 + 46.216666667 + 0 - 4.5 + 9.7 = 81.036666667
    assert sum(p.gross_margin for p in got) + D("9.7") == margin_totals(scenario()).margin


def test_a_line_split_over_a_plan_change_stays_exact() -> None:
    terms = [
        Term("c1", "A", "pro", date(2026, 1, 1), date(2026, 4, 1)),
        Term("c1", "A", "team", date(2026, 4, 2)),
    ]
    lines = [RevenueLine("c1", APR1, date(2026, 4, 3), D(10))]  # 1 day on pro, 2 on team
    costs = attribute_costs([], {}, terms, APR1, date(2026, 4, 3))
    period = (APR1, date(2026, 4, 3))
    pro, team = plan_margins(terms, {"pro": PRO, "team": TEAM}, costs, *period, lines)
    # plan revenue: pro 30 x 1/30 = 1; team 20 x 2/30 = 1.3333... -> 1.333333333
    # the line: 10 x 1/3 = 3.3333333333 -> 3.333333333 and 6.6666666667 -> 6.666666667 (largest
    # remainder: the two parts sum to the line's 10)
    # pro 1 + 3.333333333 = 4.333333333; team 1.333333333 + 6.666666667 = 8
    assert pro.revenue == D("4.333333333") and team.revenue == D("8")
    # the customer: 1 + 1.333333333 + the line's 10 (one rounding) = 12.333333333, the plans' sum
    (customer,) = customer_margins(terms, {"pro": PRO, "team": TEAM}, costs, *period, lines)
    assert customer.revenue == pro.revenue + team.revenue == D("12.333333333")
    assert customer_revenue("c1", terms, PLANS, *period, lines) == customer.revenue


def test_unknown_plans_come_after_the_known_ones_and_no_plan_last() -> None:
    terms = [
        Term("a", "A", None, APR1),
        Term("b", "B", "gold", APR1, custom_price=D(12)),  # a plan the catalogue does not know
        Term("c", "C", "pro", APR1),
    ]
    costs = attribute_costs([("ua", APR1, nanos("1"), 2)], {"a": ["ua"]}, terms, APR1, APR30)
    got = plan_margins(terms, {"pro": PRO}, costs, APR1, APR30)
    assert [(p.plan, p.active_customers, p.revenue) for p in got] == [
        ("pro", 1, D(30)), ("gold", 1, D(12)), (None, 1, D(0)),
    ]  # fmt: skip
    assert got[2].unpriced_calls == 2 and got[2].ai_cost == D(1)


def test_price_for_margin() -> None:
    assert price_for_margin(D(15), D(0)) == D(15)  # no fee, break-even: the cost
    assert price_for_margin(D(10), D(2), D(4), 0, 2) == D("6.25")  # 12 / (0.96 x 2)
    assert price_for_margin(D(10), D(0), D(10), D(50)) == D(25)  # 10 / 0.4
    assert price_for_margin(D(10), D(0), D(3), D(97)) is None  # no price reaches it
    assert price_for_margin(D(10), D(0), seat_months=0) is None


# --- 6. calculators --------------------------------------------------------------------------

JAN = datetime(2026, 1, 1, tzinfo=UTC)
M = 1_000_000


def book() -> PriceBook:
    chat = PriceVersion(7, "openai", "gpt-x", JAN)
    for unit, rate in (("input_tokens", "2.5"), ("cache_read_tokens", "1.25"),
                       ("output_tokens", "10")):  # fmt: skip
        chat.rates[(unit, "standard")] = [Rate(D(rate), M)]
    return PriceBook([chat])


def test_monthly_cost_of_a_hypothetical_customer() -> None:
    lines = [
        UsageLine("chat", "gpt-x", "openai", 100, 1200, 300, 1000),
        ("summarize", "gpt-x", "openai", D("0.5"), 1000, 0, 0),  # a plain tuple works too
        UsageLine("search", "mystery", "openai", 10, 100, 100),
    ]
    got = monthly_cost(lines, book(), datetime(2026, 2, 1, tzinfo=UTC))
    chat, summarize, search = got.lines
    # a chat call: 200 fresh input x 2.5/M + 1000 cached x 1.25/M + 300 output x 10/M
    # = 0.0005 + 0.00125 + 0.003 = 0.00475; x 100 a day x 30.4375 days = 14.4578125
    assert (chat.cost_per_call, chat.monthly_cost, chat.version_id) == (
        D("0.00475"),
        D("14.4578125"),
        7,
    )
    assert chat.calls_per_month == 100 * AVERAGE_MONTH_DAYS == Fraction("3043.75")
    # 1000 x 2.5/M = 0.0025; x 0.5 x 30.4375 = 0.038046875
    assert summarize.monthly_cost == D("0.038046875")
    # unknown model: unpriced, not $0, left out of the total
    assert (search.cost_per_call, search.monthly_cost) == (None, None)
    assert got.total == D("14.495859375")  # 14.4578125 + 0.038046875
    assert not got.complete and got.unpriced == [search]
    assert got.unpriced_calls_per_month == Fraction("304.375")  # 10 x 30.4375


def test_a_monthly_cost_is_rounded_once_from_an_exact_fraction() -> None:
    line = UsageLine("x", "gpt-x", "openai", Fraction(1, 3), 1000, 0)
    # 0.0025 x 1/3 x 30.4375 = 0.0253645833... -> 0.025364583
    assert monthly_cost([line], book(), JAN).total == D("0.025364583")
    with pytest.raises(ValueError, match="part of the input"):
        monthly_cost([UsageLine("x", "gpt-x", "openai", 1, 10, 0, 11)], book(), JAN)


def test_plan_fits_for_a_hypothetical_customer() -> None:
    usage = [
        UsageLine("chat", "gpt-x", "openai", 100, 1200, 300, 1000),
        UsageLine("summarize", "gpt-x", "openai", D("0.5"), 1000, 0),
        UsageLine("search", "mystery", "openai", 10, 100, 100),
    ]
    estimate = monthly_cost(usage, book(), JAN)
    assert estimate.total == D("14.495859375")  # as in the test above
    pro, team, annual = plan_fits(estimate, PLANS, seats=2, fee_pct=FEE, infra_per_month=INFRA)
    # pro, 2 seats: 60; fee 1.8; infra 1.5; 60 - 14.495859375 - 1.8 - 1.5 = 42.204140625;
    # / 60 = 70.3402...% -> 70.34; allowance 14.495859375 / 10 = 144.958...% -> 144.96
    assert (pro.revenue, pro.fees, pro.margin, pro.margin_pct) == (
        D(60), D("1.8"), D("42.204140625"), D("70.34"),
    )  # fmt: skip
    assert pro.allowance_used_pct == D("144.96")
    # break-even per seat: (14.495859375 + 1.5) / (0.97 x 2) = 8.2452883376... -> 8.245288338
    assert pro.break_even_price == D("8.245288338")
    assert not pro.complete  # the search line is unpriced
    # team: 40 - 14.495859375 - 1.2 - 1.5 = 22.804140625; 57.0103...% -> 57.01
    assert (team.margin, team.margin_pct, team.allowance_used_pct) == (
        D("22.804140625"), D("57.01"), None,
    )  # fmt: skip
    # annual: 120 / 12 x 2 = 20; 20 - 14.495859375 - 0.6 - 1.5 = 3.404140625
    assert (annual.revenue, annual.margin) == (D(20), D("3.404140625"))
    (fit,) = plan_fits(D(5), {"pro": PRO}, discount_pct=D(50))  # 30 x 0.5 = 15; 15 - 5 = 10
    assert (fit.revenue, fit.margin, fit.margin_pct, fit.complete) == (
        D(15), D(10), D("66.67"), True,
    )  # fmt: skip


def test_lifetime_value() -> None:
    ltv = lifetime_value(D("15.6"), D(5))  # 15.6 / 0.05 = 312, 1 / 0.05 = 20 months
    assert (ltv.value, ltv.expected_months, ltv.reason) == (D(312), D("20.00"), None)
    # 10 / 0.03 = 333.3333... -> 333.333333333; 33.33 months
    assert lifetime_value(D(10), D(3)).value == D("333.333333333")
    assert lifetime_value(D(10), D(3)).expected_months == D("33.33")
    assert lifetime_value(D("-4.5"), D(10)).value == D(-45)  # a loss over its life
    never = lifetime_value(D(10), D(0))
    assert never.value is None and never.reason and "no churn" in never.reason
    with pytest.raises(ValueError):
        lifetime_value(D(10), D(150))


def test_cost_per_active_user_by_iso_week() -> None:
    rows = [
        # ISO week 1 of 2026 runs Monday Dec 29, 2025 to Sunday Jan 4, 2026
        ("u1", date(2025, 12, 29), 1_000, 0),
        ("u2", date(2026, 1, 4), 2_000, 1),
        ("u1", date(2026, 1, 2), 0, 2),  # unpriced calls only: still active, still u1
        (None, date(2026, 1, 3), 500, 1),  # no user: apart
        # week 2: Jan 5..11
        ("u3", date(2026, 1, 5), 11, 0),
        ("u1", date(2026, 1, 11), 0, 0),  # calls priced at $0: active
        # week 4: no user at all
        (None, date(2026, 1, 19), 7, 0),
    ]
    first, second, fourth = cost_per_active_user_by_week(rows)
    # u1 and u2: 3,000 nanos / 2 = 1,500 nanos; unpriced 0 + 1 + 2 = 3
    assert (first.year, first.week, first.monday) == (2026, 1, date(2025, 12, 29))
    assert (first.active_users, first.cost, first.cost_per_user) == (
        2, D("0.000003"), D("0.0000015"),
    )  # fmt: skip
    assert first.unpriced_calls == 3
    assert (first.unattributed_cost, first.unattributed_unpriced_calls) == (D("5E-7"), 1)
    # 11 nanos / 2 users = 5.5 -> 6 (half-even)
    assert (second.week, second.active_users, second.cost_per_user) == (2, 2, D("6E-9"))
    assert (fourth.week, fourth.active_users, fourth.cost_per_user) == (4, 0, None)
    assert fourth.unattributed_cost == D("7E-9")


def test_weeks_from_masks_equal_the_weeks_of_user_days() -> None:
    """Three users over two weeks, by hand: bit k of a mask is week first_week + k."""
    first = week_number(date(2026, 3, 2))  # a Monday
    rows = [
        ("a", date(2026, 3, 2), 10, 0),
        ("a", date(2026, 3, 10), 30, 1),
        ("b", date(2026, 3, 8), 5, 0),  # a Sunday: the first week
        ("c", date(2026, 3, 12), 7, 0),
        (None, date(2026, 3, 3), 100, 2),
    ]
    masks = [0b11, 0b01, 0b10]  # a in both weeks, b in the first, c in the second
    sums = {first: (115, 2), first + 1: (37, 1)}
    unattributed = {first: (100, 2)}
    got = weeks_from_masks(first, masks, sums, unattributed)
    assert got == cost_per_active_user_by_week(rows)
    assert [(w.monday, w.active_users, w.cost, w.cost_per_user) for w in got] == [
        (date(2026, 3, 2), 2, Decimal("0.000000015"), Decimal("0.000000008")),  # 7.5 -> 8
        (date(2026, 3, 9), 2, Decimal("0.000000037"), Decimal("0.000000018")),  # 18.5 -> 18
    ]


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (date(2026, 3, 1), None),  # before the period, open
        (date(2026, 3, 5), date(2026, 3, 20)),  # inside
        (date(2026, 2, 1), date(2026, 3, 3)),  # ends in it
        (date(2026, 3, 31), None),  # the last day
        (date(2026, 4, 2), None),  # after it
        (date(2026, 1, 1), date(2026, 2, 1)),  # before it
    ],
)
def test_one_terms_spans_are_those_of_the_general_rule(start: date, end: date | None) -> None:
    """A customer with one term takes a short cut; it cuts the period as two copies of the
    term (the general rule) do."""
    term = Term("c", "C", "pro", start, end)
    one = _spans([term], date(2026, 3, 1), date(2026, 3, 31))
    general = _spans([term, term], date(2026, 3, 1), date(2026, 3, 31))
    assert [(s.first, s.last, s.term is None) for s in one] == [
        (s.first, s.last, s.term is None) for s in general
    ]


# --- cached paths: equal to the plain ones ---------------------------------------------------


def split_at_a_month(terms: list[Term], start: date, end: date) -> list[Term]:
    """Each term crossing a month boundary inside [start, end] cut in two there: the same
    revenue pieces, days and infra, but two spans, so ``customer_books`` takes its general
    loop instead of the one-span cache."""
    out = []
    for t in terms:
        first, last = max(t.start, start), min(t.end or end, end)
        cut = date(first.year + first.month // 12, first.month % 12 + 1, 1)
        if first <= last and cut <= last:
            out.append(dataclasses.replace(t, end=cut - timedelta(days=1)))
            out.append(dataclasses.replace(t, start=cut))
        else:
            out.append(t)
    return out


def test_one_span_books_equal_the_general_loop() -> None:
    start, end = date(2026, 1, 20), date(2026, 4, 10)  # four months of 31, 28, 31, 30 days
    terms = [
        Term("a", "A", "pro", date(2025, 6, 1), seats=3, discount_pct=D("12.5")),
        Term("b", "B", "team", date(2026, 2, 10), date(2026, 3, 3)),
        Term("c", "C", "annual", date(2026, 1, 1), date(2026, 4, 1), custom_price=D("7.77")),
        Term("d", "D", "pro", date(2026, 3, 2), date(2026, 3, 9)),  # within one month
        Term("e", "E", None, date(2026, 1, 25)),
    ]
    lines = [RevenueLine("b", date(2026, 2, 1), date(2026, 5, 31), D("100"), "setup")]
    split = split_at_a_month(terms, start, end)
    assert len(split) > len(terms)
    for fee, infra in [(D("2.9"), D("7") / 3), (D(0), D(0)), (D("3.1"), D("0.000000001"))]:
        got, want = (
            customer_margins(
                ts, PLANS, attribute_costs([], {}, ts, start, end), start, end, lines, fee, infra
            )
            for ts in (terms, split)
        )
        assert got == want


def test_cached_term_pieces_equal_the_rule() -> None:
    start, end = date(2026, 1, 20), date(2026, 4, 10)
    for term in [
        Term("a", "A", "pro", date(2025, 6, 1), seats=3, discount_pct=D("12.5")),
        Term("c", "C", "annual", date(2026, 2, 3), custom_price=D("7.777777777")),
        Term("f", "F", "annual", date(2026, 2, 3), seats=7),
    ]:
        for _ in range(2):  # made, then from the cache
            pieces = _term_pieces(term, PLANS, start, end)
            monthly = term_monthly_charge(term, PLANS)
            first = max(term.start, start)
            for (year, month), days, length, got in pieces:
                assert length == calendar.monthrange(year, month)[1]
                assert got == round(monthly * days / length * 1_000_000_000)  # half-even
            assert sum(p[1] for p in pieces) == (end - first).days + 1
