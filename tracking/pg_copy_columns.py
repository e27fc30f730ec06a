"""COPY text column-wise: many calls given as columns, written as ``copy_text`` writes their events.

``tracking.pg_copy.copy_line`` serialises one CallEvent at a time on the writer thread; bulk
loads (the demo's millions of calls) hold their calls as numpy columns, and making a CallEvent
of each only to serialise it would cost more than the COPY. Here each column is formatted at
once, each value by ``copy_line``'s own rules, so the text is the same byte for byte (tested on
NULLs, tags, escapes and unicode). numpy is loaded here, never by ``import tracking``.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

import numpy as np
from sqlalchemy import JSON, Boolean, DateTime, Integer, Numeric, String, Uuid

from tracking.pg_copy import COPY_COLUMNS, NULL, _j, _n, _s
from tracking.schema import calls
from tracking.sqltypes import from_nanos


@dataclass(frozen=True)
class Coded:
    """A column of few distinct values: ``choices[codes[i]]`` for call i, NULL where the code is
    -1. Each choice is formatted once, however many calls share it."""

    codes: np.ndarray
    choices: Sequence[Any]


@dataclass(frozen=True)
class Ints:
    """A whole-number column (``cost_usd``: nano-dollars), NULL where ``present`` is False."""

    values: np.ndarray
    present: np.ndarray | None = None


def _bool(value: Any) -> str:
    return "t" if value else "f"


def _uuid(value: Any) -> str:
    return value.hex if isinstance(value, uuid.UUID) else str(value)


def _moment(value: datetime) -> str:
    return value.isoformat()


def _formatter(name: str) -> Callable[[Any], str]:
    """``copy_line``'s rule for one column, read from the column's type in ``calls``."""
    kind = calls.c[name].type
    kind = getattr(kind, "impl", kind)  # Money, UTCDateTime: their stored type
    for sql_type, format_value in (
        (Uuid, _uuid),
        (DateTime, _moment),
        (Boolean, _bool),
        (JSON, _j),
        (String, _s),
        (Integer, _n),
        (Numeric, _n),
    ):
        if isinstance(kind, sql_type):
            return format_value
    raise TypeError(f"no COPY format for {name} ({kind!r})")


FORMATS = {name: _formatter(name) for name in COPY_COLUMNS}


def copy_text_of_columns(n: int, columns: Mapping[str, Any]) -> str:
    """``n`` calls as COPY text, columns in ``COPY_COLUMNS`` order: what ``copy_text`` makes of
    the same calls as CallEvents. Each column is one of: missing or None (NULL everywhere), a
    value for every call, ``Coded``, ``Ints``, a bool array (``batch``), a datetime64 array of
    UTC times (``occurred_at``), or any other array (one value per call, as CallEvent holds it).
    """
    unknown = set(columns) - set(COPY_COLUMNS)
    if unknown:
        raise ValueError(f"not columns of calls: {sorted(unknown)}")
    texts = [_column_text(name, columns.get(name), n) for name in COPY_COLUMNS]
    return "".join([line + "\n" for line in map("\t".join, zip(*texts, strict=False))])


def _column_text(name: str, column: Any, n: int) -> Sequence[str] | itertools.repeat[str]:
    format_value = FORMATS[name]
    if isinstance(column, Coded):
        table = np.array([*(format_value(c) for c in column.choices), NULL], dtype=object)
        texts = table[column.codes]  # code -1: the NULL appended last
    elif isinstance(column, Ints):
        texts = (_dollars if name == "cost_usd" else _digits)(column.values)
        if column.present is not None:
            texts = np.where(column.present, texts, NULL)
    elif not isinstance(column, np.ndarray):
        return itertools.repeat(NULL if column is None else format_value(column), n)
    elif column.dtype == bool:
        texts = np.where(column, "t", "f")
    elif np.issubdtype(column.dtype, np.datetime64):
        texts = _isoformat_utc(column)
    else:
        return [format_value(v) for v in column.tolist()]
    if len(texts) != n:
        raise ValueError(f"{name} has {len(texts)} values for {n} calls")
    return texts.tolist()  # type: ignore[no-any-return]


def _digits(values: np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=np.int64).astype(str)


@cache
def _small_dollars() -> np.ndarray:
    """``str(from_nanos(i))`` below 1,000 nano-dollars, where Decimal writes an exponent."""
    return np.array([str(from_nanos(i)) for i in range(1000)], dtype=object)


def _dollars(nanos: np.ndarray) -> np.ndarray:
    """Nano-dollars as ``str(from_nanos(v))`` writes them: ``0.000001234``, ``1.5E-8``."""
    nanos = np.asarray(nanos, dtype=np.int64)
    whole = np.char.add(np.char.add((nanos // 10**9).astype(str), "."), _zfill(nanos % 10**9, 9))
    texts = whole.astype(object)
    small = (nanos >= 0) & (nanos < 1000)
    texts[small] = _small_dollars()[nanos[small]]
    for i in np.flatnonzero(nanos < 0):  # no cost is negative, but the rule is Decimal's
        texts[i] = str(from_nanos(int(nanos[i])))
    return texts  # type: ignore[no-any-return]


def _zfill(values: np.ndarray, width: int) -> np.ndarray:
    return np.char.zfill(values.astype(str), width)


def _isoformat_utc(moments: np.ndarray) -> np.ndarray:
    """``datetime.isoformat()`` of aware UTC times: microseconds only where there are some."""
    micros = moments.astype("datetime64[us]")
    seconds = micros.astype("datetime64[s]")
    texts = np.datetime_as_string(seconds, unit="s")
    fraction = (micros - seconds).astype(np.int64)
    with_micros = np.char.add(np.char.add(texts, "."), _zfill(fraction, 6))
    return np.char.add(np.where(fraction == 0, texts, with_micros), "+00:00")
