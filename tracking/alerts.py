"""The alerts due now: budgets' soft thresholds crossed and hard limits hit in their current
period, and spend anomalies (:mod:`tracking.anomalies`) of the last days.

Each alert has a ``key`` that names what it is about, so that delivery sends it once per channel
however often the check runs (:mod:`tracking.alert_delivery`):
``budget|<name>|<period label>|<threshold>%``, ``budget|<name>|<period label>|hard`` and
``anomaly|<scope>=<value>|<UTC day>``. A threshold counts as crossed when the period's spend is
at least that percent of its limit (rollover included) and more than $0; a hard limit is hit
when the spend is at least the limit and more than $0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection

from tracking.anomalies import Anomaly, AnomalyRule, find_anomalies
from tracking.budget_store import BudgetStatus, list_budgets, status
from tracking.sqltypes import plain_decimal

KINDS = ("hard_limit", "threshold", "anomaly")  # the order alerts are listed in


@dataclass(frozen=True)
class Alert:
    """One alert: ``kind`` one of :data:`KINDS`, a one-line ``message`` and a JSON ``detail``
    (money as exact decimal strings)."""

    key: str
    kind: str
    message: str
    detail: dict[str, Any] = field(default_factory=dict, compare=False)


def _money(amount: Decimal) -> str:
    """'$1,234.50': to the cent for reading (the detail keeps the exact amount)."""
    return f"${amount:,.2f}"


def _budget_detail(s: BudgetStatus) -> dict[str, Any]:
    return {
        "budget": s.budget.name,
        "scope": s.budget.describe_scope(),
        "period": s.spend.period.label,
        "timezone": s.budget.timezone,
        "spent_usd": plain_decimal(s.spend.amount),
        "limit_usd": plain_decimal(s.limit),
        "unpriced_calls": s.spend.unpriced_calls,
    }


def budget_alerts(s: BudgetStatus) -> list[Alert]:
    """The alerts of one budget's status: its hard limit hit, each threshold crossed."""
    b, spent = s.budget, s.spend.amount
    if spent <= 0:
        return []
    base = f"budget|{b.name}|{s.spend.period.label}"
    of = f"{_money(spent)} of {_money(s.limit)} in {s.spend.period.label} ({b.describe_scope()})"
    unpriced = s.spend.unpriced_calls
    unknown = (
        f", plus {unpriced} call{'s' if unpriced != 1 else ''} of unknown cost" if unpriced else ""
    )
    found = []
    if b.hard and spent >= s.limit:
        found.append(
            Alert(
                f"{base}|hard",
                "hard_limit",
                f"Budget {b.name!r} hit its hard limit: {of}{unknown}; "
                "calls it covers are refused.",
                _budget_detail(s),
            )
        )
    for t in b.thresholds:
        if spent * 100 >= s.limit * t:
            found.append(
                Alert(
                    f"{base}|{t}%",
                    "threshold",
                    f"Budget {b.name!r} passed {t}%: {of}{unknown}.",
                    {**_budget_detail(s), "threshold_percent": t},
                )
            )
    return found


def anomaly_alert(a: Anomaly, rule: AnomalyRule) -> Alert:
    ratio = "" if a.median == 0 else f", {a.spend / a.median:.1f}x"
    return Alert(
        f"anomaly|{a.scope}={a.value or '*'}|{a.day.isoformat()}",
        "anomaly",
        f"Spend anomaly for {a.describe()} on {a.day.isoformat()} (UTC): {_money(a.spend)} "
        f"against a {a.history_days}-day median of {_money(a.median)}{ratio} "
        f"(alerts above {plain_decimal(rule.k)}x and {_money(rule.min_usd)}).",
        {
            "scope": a.scope,
            "value": a.value,
            "day": a.day.isoformat(),
            "spent_usd": plain_decimal(a.spend),
            "median_usd": plain_decimal(a.median),
            "history_days": a.history_days,
        },
    )


def due_alerts(
    conn: Connection,
    now: datetime | None = None,
    rule: AnomalyRule | None = None,
    anomaly_days: int = 2,
) -> list[Alert]:
    """Every alert due at ``now``: budgets in their current period, and anomalies of the last
    ``anomaly_days`` UTC days (today, which is not over, included); hard limits first."""
    now = now or datetime.now(UTC)
    rule = rule or AnomalyRule()
    found: list[Alert] = []
    for budget in list_budgets(conn):
        found += budget_alerts(status(conn, budget, now))
    if anomaly_days > 0:
        today = now.astimezone(UTC).date()
        first = today - timedelta(days=anomaly_days - 1)
        found += [anomaly_alert(a, rule) for a in find_anomalies(conn, first, today, rule)]
    return sorted(found, key=lambda a: KINDS.index(a.kind))
