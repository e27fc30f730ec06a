"""Pure money calculations for the pages: no Streamlit, no SQL, so they are unit-tested alone."""

from dashboard.economics.accounts import Plan, RevenueLine, Term
from dashboard.economics.attribution import AICost, attribute_costs
from dashboard.economics.calculators import (
    UsageLine,
    cost_per_active_user_by_week,
    lifetime_value,
    monthly_cost,
    plan_fits,
)
from dashboard.economics.margins import (
    CustomerMargin,
    below_margin,
    customer_margins,
    margin_percentiles,
    margin_totals,
    percentile,
    unprofitable,
)
from dashboard.economics.money import AVERAGE_MONTH_DAYS
from dashboard.economics.plans import plan_margins, price_for_margin
from dashboard.economics.projection import (
    MIN_HISTORY_DAYS,
    change,
    month_to_date,
    project_month_end,
)
from dashboard.economics.revenue import customer_revenue, line_revenue, term_revenue

__all__ = [
    "AVERAGE_MONTH_DAYS",
    "MIN_HISTORY_DAYS",
    "AICost",
    "CustomerMargin",
    "Plan",
    "RevenueLine",
    "Term",
    "UsageLine",
    "attribute_costs",
    "below_margin",
    "change",
    "cost_per_active_user_by_week",
    "customer_margins",
    "customer_revenue",
    "lifetime_value",
    "line_revenue",
    "margin_percentiles",
    "margin_totals",
    "month_to_date",
    "monthly_cost",
    "percentile",
    "plan_fits",
    "plan_margins",
    "price_for_margin",
    "project_month_end",
    "term_revenue",
    "unprofitable",
]
