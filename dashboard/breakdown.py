"""Breakdowns of a ``queries.day_frame`` (totals per day, provider, model, feature): plain pandas,
no SQL and no Streamlit, so one read of the rollups serves a whole page and is unit-tested alone.

Money stays exact: costs are integer nano-dollars until they are shown.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import pandas as pd

from tracking.sqltypes import from_nanos, to_nanos


@dataclass(frozen=True)
class Totals:
    calls: int
    error_calls: int
    unpriced_calls: int
    cost_usd: Decimal
    input_tokens: int
    output_tokens: int

    @property
    def error_rate(self) -> float:
        return self.error_calls / self.calls if self.calls else 0.0

    @property
    def all_unpriced(self) -> bool:
        """No call has a known cost: the cost is unknown, not $0."""
        return self.calls > 0 and self.unpriced_calls == self.calls


def totals(frame: pd.DataFrame) -> Totals:
    return Totals(
        calls=int(frame["calls"].sum()),
        error_calls=int(frame["errors"].sum()),
        unpriced_calls=int(frame["unpriced"].sum()),
        cost_usd=cost(frame),
        input_tokens=int(frame["input_tokens"].sum()),
        output_tokens=int(frame["output_tokens"].sum()),
    )


GROUPS_IN_FRAME = ("feature", "provider", "model", "day")
TABLE_COLUMNS = ("calls", "errors", "unpriced", "input_tokens", "output_tokens", "cost_usd")


def between(frame: pd.DataFrame, start: date, end: date) -> pd.DataFrame:
    return frame[(frame["day"] >= start) & (frame["day"] <= end)]


def cost(frame: pd.DataFrame) -> Decimal:
    """The exact total cost of the rows."""
    return from_nanos(int(frame["cost_nanos"].sum()))


def daily_costs(frame: pd.DataFrame) -> dict[date, Decimal]:
    """Exact cost per day."""
    per_day = frame.groupby("day")["cost_nanos"].sum()
    return {day: from_nanos(int(n)) for day, n in per_day.items()}


def daily_by(frame: pd.DataFrame, key: str = "provider") -> pd.DataFrame:
    """One row per day and ``key`` with calls, unpriced calls and cost (exact nano-dollars, and
    float dollars for charts: NaN, no bar, where every call is unpriced)."""
    out = frame.groupby(["day", key], as_index=False)[["calls", "unpriced", "cost_nanos"]].sum()
    out["cost_usd"] = (out["cost_nanos"] / 1e9).mask(out["unpriced"] >= out["calls"])
    return out.sort_values(["day", key], ignore_index=True)


def group_table(frame: pd.DataFrame, group: str) -> pd.DataFrame:
    """The Costs table for ``group`` (feature, provider, model or day): most expensive first,
    days in order; ``share_pct`` is each group's share of the cost shown."""
    if group not in GROUPS_IN_FRAME:
        raise ValueError(f"group must be one of {GROUPS_IN_FRAME}, got {group!r}")
    counts = ["calls", "errors", "unpriced", "input_tokens", "output_tokens", "cost_nanos"]
    out = frame.groupby(group, as_index=False)[counts].sum()
    if group == "day":
        out = out.sort_values("day", ignore_index=True)
    else:
        out = out.sort_values(["cost_nanos", group], ascending=[False, True], ignore_index=True)
    return finish_table(out)


def finish_table(out: pd.DataFrame) -> pd.DataFrame:
    """Add float dollars for display and each row's share of the total, keeping the exact
    ``cost_nanos``. A group whose calls are all unpriced has no cost (NaN, shown as
    "unpriced"), not $0, and no share."""
    nanos = out["cost_nanos"]
    unknown = out["unpriced"] >= out["calls"]
    out["cost_usd"] = (nanos / 1e9).mask(unknown)
    total = int(nanos.sum())
    out["share_pct"] = (100 * nanos / total).mask(unknown) if total else float("nan")
    return out


def share_of(table: pd.DataFrame, total: Decimal) -> pd.DataFrame:
    """Each row's share (%) of ``total`` (a table that shows only the top rows)."""
    out = table.copy()
    nanos = to_nanos(total)
    share = 100 * out["cost_nanos"] / nanos if nanos else float("nan")
    out["share_pct"] = share if not nanos else share.mask(out["cost_usd"].isna())
    return out
