"""Every CSV the app and its commands write: a cell a spreadsheet would run as a formula
(OWASP's rule: = + - @, tab or CR first) is made text with a leading apostrophe. One module, so
that no export can forget it (``tests/test_csv_export.py`` fails on a ``to_csv`` elsewhere)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the margins command writes CSV without pandas
    import pandas as pd

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# a plain decimal number, which a spreadsheet reads as a number, never a formula; Decimal()
# would also take "-Infinity", "-NaN" and "-1_000", which a spreadsheet runs as formulas
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def safe_text(text: str) -> str:
    """A cell of a text column (an id, a name): an apostrophe before any formula start."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def safe_cell(value: Any) -> Any:
    """A cell of a mixed column: text made safe, a plain number ("-1.5") left a number."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


def frame_csv(frame: pd.DataFrame) -> str:
    """The frame as CSV without its index, every text cell through ``safe_cell``."""
    import pandas as pd

    out = frame.copy()
    for column in out.columns:
        if out[column].dtype == object or pd.api.types.is_string_dtype(out[column]):
            out[column] = [safe_cell(v) for v in out[column]]
    return out.to_csv(index=False)
