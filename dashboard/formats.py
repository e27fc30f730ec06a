"""How figures read on the pages and in exports: money to enough digits to tell it from zero,
unknown cost as "unpriced" (never $0), and CSV with exact decimals as text.

Plain functions over Decimals and DataFrames, no Streamlit, so they are unit-tested alone.
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_EVEN, Decimal

import pandas as pd

from dashboard.breakdown import Totals
from dashboard.csv_export import frame_csv
from tracking.sqltypes import from_nanos, plain_decimal

UNPRICED = "unpriced"
CENT = Decimal("0.01")


def plural(count: int, word: str, many: str | None = None) -> str:
    """'1 call', '2,345 calls'; ``many`` where adding an s is wrong ('3 entries')."""
    return f"{count:,} {word if count == 1 else many or word + 's'}"


def usd(amount: Decimal | float) -> str:
    """'$1,234.57'; an amount under a cent with two significant digits ('$0.0042'), so that it
    is never shown as $0.00. A float (an estimate, such as a projection) is shown as its
    shortest decimal."""
    if isinstance(amount, float):
        if not math.isfinite(amount):
            return "n/a"
        amount = Decimal(repr(amount))
    if amount == 0 or abs(amount) >= CENT:
        return f"${amount:,.2f}".replace("$-", "-$")
    digits = 1 - amount.adjusted()  # two significant digits
    return f"${amount:,.{digits}f}".replace("$-", "-$")


def latency_text(ms: float | None) -> str:
    """'669 ms', '1.81 s': short enough for a metric in a 700-pixel window."""
    if ms is None:
        return "n/a"
    return f"{ms:,.0f} ms" if ms < 999.5 else f"{ms / 1000:,.2f} s"


def cost_text(totals: Totals) -> str:
    """The cost of a set of calls: 'unpriced' when none has a known cost."""
    return UNPRICED if totals.all_unpriced else usd(totals.cost_usd)


def unpriced_note(totals: Totals) -> str | None:
    """What a cost figure leaves out: the calls whose cost is unknown."""
    if not totals.unpriced_calls:
        return None
    if totals.all_unpriced:
        every = "The call is" if totals.calls == 1 else f"All {totals.calls:,} calls are"
        return f"{every} unpriced: their cost is unknown, not $0."
    left_out = plural(totals.unpriced_calls, "unpriced call")
    return f"Plus {left_out} of unknown cost, not counted."


def cost_label(nanos: int, calls: int, unpriced: int) -> str:
    """A group's cost in words for a tooltip: "$1.23", "unpriced", "$1.23 + 4 unpriced"."""
    if calls and unpriced >= calls:
        return UNPRICED
    text = usd(from_nanos(nanos))
    return f"{text} + {unpriced:,} unpriced" if unpriced else text


def money_decimals(costs: pd.Series) -> int:
    """Decimals a column of dollar costs needs so that its smallest nonzero cost shows a
    nonzero digit: 2, or up to 6 for costs under a cent."""
    nonzero = costs[(costs.notna()) & (costs != 0)].abs()
    if nonzero.empty or nonzero.min() >= 0.01:
        return 2
    return min(6, 1 - math.floor(math.log10(float(nonzero.min()))))


def axis_format(top: float) -> str:
    """A d3 format for a dollar axis from 0 to ``top``: enough decimals that its ticks (about
    five) read apart ('$0.002 $0.004', not '$0 $0 $0.01'), trailing zeros trimmed."""
    if not top or top <= 0 or not math.isfinite(top):
        return "$,.2~f"
    step = top / 5
    decimals = max(0, min(6, -math.floor(math.log10(step))))
    return f"$,.{max(decimals, 0)}~f"


def exact_usd(nanos: int) -> str:
    """Exact dollars as decimal text for a CSV: '0.000012345', never '1.2345e-05'."""
    return plain_decimal(from_nanos(nanos))


CSV_NAMES = {
    "user": "User",
    "feature": "Feature",
    "provider": "Provider",
    "model": "Model",
    "day": "Day",
    "calls": "Calls",
    "errors": "Errors",
    "unpriced": "Unpriced calls",
    "input_tokens": "Input tokens",
    "output_tokens": "Output tokens",
}


def csv_table(table: pd.DataFrame, group: str) -> str:
    """The Costs table as CSV: readable column names, the cost as exact decimal text (empty for
    a group whose calls are all unpriced, with the unpriced count beside it), shares rounded."""
    unknown = table["unpriced"] >= table["calls"]
    out = table[[group, *(n for n in CSV_NAMES if n in table and n != group)]].copy()
    out["Cost (USD)"] = [
        "" if u else exact_usd(int(n)) for n, u in zip(table["cost_nanos"], unknown, strict=True)
    ]
    out["Share (%)"] = [
        "" if pd.isna(s) else str(Decimal(repr(s)).quantize(Decimal("0.1"), ROUND_HALF_EVEN))
        for s in table["share_pct"]
    ]
    return frame_csv(out.rename(columns=CSV_NAMES))


def cell_message(row: int | None, label: str | None, message: str) -> str:
    """An editor's problem as the pages show it: "Row 3, Rate ($): ...", the row 1-based as the
    table numbers rows; without a row or a column, only what is known of where."""
    where = [f"Row {row}"] if row is not None else []
    if label is not None:
        where.append(label)
    return f"{', '.join(where)}: {message}" if where else message
