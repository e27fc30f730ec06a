"""Matching one tag of ``calls.tags`` (JSON) as a user means it, the same on both stores.

``demo=true`` finds the JSON boolean ``true`` and the string ``"true"``, ``n=1`` the number 1
(or 1.0) and the string ``"1"``, ``plan=pro`` the string. Used by the budgets (a budget scoped
to a tag) and meant to be the one copy the dashboard's raw-call filters use too.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import Numeric, and_, case, cast, exists, false, func, or_
from sqlalchemy.sql import ColumnElement

NUMBER_EXPONENT = 300  # a typed number beyond 1e±300 is matched as text only (a double's range)
_INT64 = 2**63


def json_number(text: str) -> Decimal | None:
    """The number ``text`` spells, if a JSON number of either store can equal it: ``1e999`` or
    ``1e-999`` (beyond a double, which SQLite's JSON numbers are) is text, not a number."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    if not value.is_finite() or (value and abs(value.adjusted()) > NUMBER_EXPONENT):
        return None
    return value


def sqlite_number(number: Decimal) -> int | float:
    """A number as SQLite's ``json_extract`` gives it: an integer within 64 bits, else a real."""
    if number == number.to_integral() and -_INT64 <= number < _INT64:
        return int(number)
    return float(number)


def tag_equals(tags: Any, key: str, text: str, dialect: str) -> ColumnElement[bool]:
    """Whether tag ``key`` holds ``text`` as a string, or as the boolean or number it spells.

    ``tags`` is the JSON column (``calls.c.tags`` or an alias's); ``dialect`` the store's
    dialect name. On SQLite the tag is found through ``json_each``, whose keys are the
    unescaped text: a JSON path (``$."café"``) is compared with the stored, escaped text by
    SQLite 3.40 and misses keys with non-ASCII characters or backslashes, and cannot hold a ``"``.
    """
    tag: Any = None
    numbers: tuple[str, ...]
    if dialect == "sqlite":
        tag = func.json_each(tags).table_valued("key", "value", "type").alias()
        kind: Any = tag.c.type
        value: Any = tag.c.value
        string, true, false_, numbers = "text", "true", "false", ("integer", "real")
    else:
        element = tags[key]
        kind, value = func.json_typeof(element), element.as_string()
        string, true, false_, numbers = "string", "boolean", "boolean", ("number",)
    matches = [and_(kind == string, value == text)]
    spelled = text.strip().lower()
    if spelled in ("true", "false"):
        if dialect == "sqlite":
            matches.append(kind == (true if spelled == "true" else false_))
        else:
            matches.append(and_(kind == true, value == spelled))
    number = json_number(text.strip())
    if number is not None:
        if dialect == "sqlite":  # json_extract gives the number itself
            matches.append(and_(kind.in_(numbers), value == sqlite_number(number)))
        else:  # CASE: the text is cast only where it is a JSON number
            matches.append(case((kind.in_(numbers), cast(value, Numeric) == number), else_=false()))
    if tag is None:
        return or_(*matches)
    return exists().select_from(tag).where(tag.c.key == key, or_(*matches))
