"""The margins as the Users & margins page and its downloads show them: one row per customer
or plan, money as exact decimal text (what the CSV holds) beside floats to draw. Plain
functions over the economics results, no Streamlit."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal

import pandas as pd

from dashboard.economics import CustomerMargin
from dashboard.economics.plans import PlanMargin
from dashboard.report import COLUMNS as REPORT_COLUMNS
from tracking.sqltypes import plain_decimal

CUSTOMER_COLUMNS = [*REPORT_COLUMNS, "active_days"]  # the report's, and the days active


def money(amount: Decimal | None) -> str:
    """Exact dollars as plain decimal text, '' for none."""
    return "" if amount is None else plain_decimal(amount)


def customers_frame(margins: Iterable[CustomerMargin]) -> pd.DataFrame:
    """One row per customer, money as exact text; ``margin_usd`` a float to draw and sort."""
    rows = [
        (
            m.customer_id,
            m.name,
            m.plan or "no plan",
            money(m.revenue),
            money(m.ai_cost),
            money(m.fees),
            money(m.infra),
            money(m.margin),
            money(m.margin_pct),
            m.unpriced_calls,
            m.active_days,
            float(m.margin),
        )
        for m in margins
    ]
    return pd.DataFrame(rows, columns=[*CUSTOMER_COLUMNS, "margin_usd"])


PLAN_COLUMNS = [
    "plan",
    "active_customers",
    "revenue",
    "ai_cost",
    "gross_margin",
    "margin_pct",
    "avg_ai_cost",
    "p90_ai_cost",
    "allowance_used_pct",
    "break_even_price",
    "profitable_pct",
    "target_price",
    "unpriced_calls",
]


def plans_frame(plans: Iterable[PlanMargin]) -> pd.DataFrame:
    """One row per plan (with customers in the period), money as exact text."""
    rows = [
        (
            p.plan or "no plan",
            p.active_customers,
            money(p.revenue),
            money(p.ai_cost),
            money(p.gross_margin),
            money(p.margin_pct),
            money(p.avg_ai_cost),
            money(p.p90_ai_cost),
            money(p.allowance_used_pct),
            money(p.break_even_price),
            money(p.profitable_pct),
            money(p.target_price),
            p.unpriced_calls,
        )
        for p in plans
        if p.active_customers
    ]
    return pd.DataFrame(rows, columns=PLAN_COLUMNS)


def top_text(spend: Mapping[str, list[tuple[str, Decimal]]], customer_id: str) -> str:
    """'chat $12.30, search $4.10': a customer's costliest features or models."""
    return ", ".join(f"{name} ${money(cost)}" for name, cost in spend.get(customer_id, []))
