"""Every CSV the app and its commands write goes through ``dashboard.csv_export``: no cell a
spreadsheet would run as a formula, numbers left numbers, other text exactly as given."""

from __future__ import annotations

import ast
import csv
import io
from pathlib import Path

import pandas as pd
import pytest

from dashboard import formats
from dashboard.csv_export import frame_csv, safe_cell, safe_text

ROOT = Path(__file__).resolve().parent.parent
FORMULAS = [
    '=HYPERLINK("http://evil.example","x")',
    "=1+1",
    "+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(A1:A9)",
    "\t=1",
    "\r=1",
    "-Infinity",  # Decimal reads these as numbers; a spreadsheet does not
    "-NaN",
    "-1_000",
]
PLAIN = ["Acme", "ü‮ltr", "a\u200bb", "<script>alert(1)</script>", "x' OR '1'='1", "日本"]


@pytest.mark.parametrize("text", FORMULAS)
def test_a_formula_is_made_text(text: str) -> None:
    assert safe_cell(text) == "'" + text
    assert safe_text(text) == "'" + text


@pytest.mark.parametrize("number", ["-1.5", "-0.25", "+2", "-3e5", "-.5", "0"])
def test_a_plain_number_stays_a_number_in_a_mixed_column(number: str) -> None:
    assert safe_cell(number) == number


@pytest.mark.parametrize("text", PLAIN)
def test_other_text_is_kept_exactly(text: str) -> None:
    frame = pd.DataFrame({"user": [text], "cost": ["1.5"]})
    rows = list(csv.reader(io.StringIO(frame_csv(frame))))
    assert rows == [["user", "cost"], [text, "1.5"]]


def test_the_costs_download_makes_a_hostile_user_id_text() -> None:
    table = pd.DataFrame(
        {
            "user_id": [FORMULAS[0], "-5", "alice"],
            "calls": [3, 2, 1],
            "unpriced": [0, 0, 0],
            "cost_nanos": [1_500_000_000, 2, 3],
            "share_pct": [50.0, 30.0, 20.0],
        }
    )
    rows = list(csv.reader(io.StringIO(formats.csv_table(table, "user_id"))))
    assert [r[0] for r in rows[1:]] == ["'" + FORMULAS[0], "-5", "alice"]
    assert rows[1][rows[0].index("Cost (USD)")] == "1.5"


def test_no_csv_is_written_outside_the_export_module() -> None:
    """A ``to_csv`` call or a ``csv.writer`` anywhere else in the app would be an export that
    could carry a formula; the margins command's writer takes its cells from ``safe_text``."""
    allowed = {ROOT / "dashboard" / "csv_export.py"}
    writers = {ROOT / "dashboard" / "report.py"}  # csv.writer over safe_text cells
    found = []
    for path in [*(ROOT / "dashboard").rglob("*.py"), *(ROOT / "pages").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Attribute):
                continue
            if node.attr == "to_csv" and path not in allowed:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} to_csv")
            is_csv = isinstance(node.value, ast.Name) and node.value.id == "csv"
            if node.attr == "writer" and is_csv and path not in allowed | writers:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} csv.writer")
    assert not found, found
