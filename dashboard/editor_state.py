"""A data editor's own state (``edited_rows``, ``added_rows``, ``deleted_rows``), read for what
the table it returns cannot carry: a lone surrogate (half of a character, which the browser's
JSON can send) makes Streamlit's editor leave that cell's whole row out of the returned table
(pyarrow cannot encode it), so a page reading the table alone would drop the row unsaid."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tracking.events import unstorable


def unstorable_cells(state: Mapping[str, Any], shown: int) -> list[tuple[int, str, str]]:
    """(row, column, why) of each cell whose text no store can hold, rows numbered as the
    editor numbers them: the rows kept of the ``shown`` ones, then the added ones."""
    deleted = {int(p) for p in state.get("deleted_rows") or ()}
    kept = [p for p in range(shown) if p not in deleted]
    number_of = {p: n for n, p in enumerate(kept, start=1)}
    cells = [
        (number_of.get(int(p)), changes) for p, changes in (state.get("edited_rows") or {}).items()
    ]
    cells += [(len(kept) + i, row) for i, row in enumerate(state.get("added_rows") or (), 1)]
    found: list[tuple[int, str, str]] = []
    for number, changes in cells:
        for column, value in (changes or {}).items():
            if number is not None and isinstance(value, str) and (why := unstorable(value)):
                found.append((number, column, why))
    return found
