"""How money reads: never $0.00 for a cost under a cent, "unpriced" for an unknown cost, CSV
with exact decimals as text and readable names, dollar axes whose ticks read apart."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pandas as pd

from dashboard import formats
from dashboard.breakdown import Totals, finish_table


def test_usd_shows_small_costs_apart_from_zero() -> None:
    assert formats.usd(Decimal("1234.567")) == "$1,234.57"
    assert formats.usd(Decimal("0.004213")) == "$0.0042"
    assert formats.usd(Decimal("0.000000123")) == "$0.00000012"
    assert formats.usd(Decimal(0)) == "$0.00"
    assert formats.usd(Decimal("-0.5")) == "-$0.50"
    assert formats.usd(12.3456) == "$12.35"
    assert formats.usd(float("nan")) == "n/a"


def test_cost_labels_say_what_a_cost_leaves_out() -> None:
    assert formats.cost_label(1_234_000_000, 5, 0) == "$1.23"
    assert formats.cost_label(4_200_000, 5, 2) == "$0.0042 + 2 unpriced"
    assert formats.cost_label(0, 3, 3) == "unpriced"
    assert formats.cost_label(0, 0, 0) == "$0.00"


def test_latency_reads_short() -> None:
    assert formats.latency_text(669.4) == "669 ms"
    assert formats.latency_text(1808.0) == "1.81 s"
    assert formats.latency_text(None) == "n/a"


def test_an_unknown_cost_is_said_in_words() -> None:
    unknown = Totals(4, 0, 4, Decimal(0), 10, 0)
    assert formats.cost_text(unknown) == "unpriced"
    assert "cost is unknown" in (formats.unpriced_note(unknown) or "")
    partly = Totals(5, 0, 2, Decimal("0.25"), 10, 0)
    assert formats.cost_text(partly) == "$0.25"
    assert formats.unpriced_note(partly) == "Plus 2 unpriced calls of unknown cost, not counted."
    assert formats.unpriced_note(Totals(5, 0, 0, Decimal(1), 1, 1)) is None


def test_money_columns_get_the_decimals_their_smallest_cost_needs() -> None:
    assert formats.money_decimals(pd.Series([12.5, 0.5])) == 2
    assert formats.money_decimals(pd.Series([12.5, 0.0042, float("nan"), 0.0])) == 4
    assert formats.money_decimals(pd.Series([1e-9])) == 6
    assert formats.money_decimals(pd.Series([], dtype="float64")) == 2


def test_axis_ticks_read_apart() -> None:
    assert formats.axis_format(0.012) == "$,.3~f"  # $0.002 $0.004 ..., not $0 $0 $0.01
    assert formats.axis_format(5000) == "$,.0~f"
    assert formats.axis_format(0) == "$,.2~f"


def test_the_csv_has_exact_costs_as_text_and_leaves_unknown_costs_empty() -> None:
    table = finish_table(
        pd.DataFrame(
            {
                "model": ["gpt-4o", "tiny", "house-model"],
                "calls": [10, 3, 2],
                "errors": [0, 0, 0],
                "unpriced": [1, 0, 2],
                "input_tokens": [1000, 3, 20],
                "output_tokens": [100, 0, 5],
                "cost_nanos": [2_500_000_001, 12_345, 0],
            }
        )
    )
    rows = list(csv.DictReader(io.StringIO(formats.csv_table(table, "model"))))
    assert list(rows[0]) == [
        "Model",
        "Calls",
        "Errors",
        "Unpriced calls",
        "Input tokens",
        "Output tokens",
        "Cost (USD)",
        "Share (%)",
    ]
    assert rows[0]["Cost (USD)"] == "2.500000001" and rows[0]["Share (%)"] == "100.0"
    assert rows[1]["Cost (USD)"] == "0.000012345"  # not 1.2345e-05
    assert rows[2]["Cost (USD)"] == "" and rows[2]["Unpriced calls"] == "2"
    assert rows[2]["Share (%)"] == ""


def test_the_shown_table_says_unpriced_where_a_cost_is_unknown() -> None:
    from dashboard import tables

    table = finish_table(
        pd.DataFrame(
            {
                "model": ["gpt-4o", "house-model"],
                "calls": [10, 2],
                "errors": [0, 0],
                "unpriced": [3, 2],
                "input_tokens": [1000, 20],
                "output_tokens": [100, 5],
                "cost_nanos": [4_200_000, 0],
            }
        )
    )
    styler, _ = tables.cost_table(table, "model")
    shown = styler.to_string(delimiter="|").splitlines()
    assert shown[1].split("|")[2:5] == ["$0.0042", "100.0%", "10"]
    assert shown[2].split("|")[2:4] == ["unpriced", ""]
    assert "3 calls unpriced" in shown[1] and "unpriced: cost unknown" in shown[2]
    assert "None" not in styler.to_string()
