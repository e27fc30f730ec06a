"""Whether a text a user typed, pasted or imported is one both stores can hold: the editors and
the CSV import refuse it by row with this reason instead of failing at the write with a
traceback (PostgreSQL) or keeping it (SQLite, which takes a NUL)."""

from __future__ import annotations


def unstorable(text: str) -> str | None:
    """Why neither store can hold ``text``, else None: a NUL (PostgreSQL's text refuses it) or
    a lone surrogate (half of a character, which no UTF-8 encoder writes: a data editor's cell
    can hold one, as the browser's JSON escapes it)."""
    if "\x00" in text:
        return "contains a NUL character"
    if not text.isascii():
        try:
            text.encode()
        except UnicodeEncodeError:
            return "contains a lone surrogate (half of a character)"
    return None
