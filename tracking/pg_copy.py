"""PostgreSQL's fast path: COPY a batch into a temporary stage, then one set-based statement.

Measured with ``bench/ingest.py``: SQLAlchemy ``executemany`` of the calls and rollup rows managed
about 3,500 calls/s; COPY into a stage plus one INSERT ... SELECT that also upserts the rollups is
an order of magnitude faster. The COPY statement names only our own table and columns; the data
travels in COPY's text format, never inside SQL.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Date,
    MetaData,
    Table,
    case,
    cast,
    func,
    insert,
    literal,
    select,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert

from tracking.events import ROW_FIELDS, CallEvent
from tracking.schema import ROLLUP_COUNTS, ROLLUP_KEYS, TOKEN_FIELDS, call_ids, calls, daily_rollups

_stage_metadata = MetaData()
stage = Table(
    "unitwise_stage",
    _stage_metadata,
    *(Column(c.name, c.type) for c in calls.columns),
    prefixes=["TEMPORARY"],
    postgresql_on_commit="DROP",
)
_COLUMNS = tuple(c.name for c in calls.columns)
assert set(_COLUMNS) == set(ROW_FIELDS), "CallEvent and the calls table must agree"
_COPY_SQL = f"COPY unitwise_stage ({', '.join(_COLUMNS)}) FROM STDIN"
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
NULL = "\\N"


def _text(value: str) -> str:
    return value.translate(_ESCAPES)


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":")).translate(_ESCAPES)


def _plain(value: Any) -> str:
    return str(value)


def _converter(name: str) -> Callable[[Any], str]:
    if name == "id":
        return lambda v: v.hex
    if name == "occurred_at":
        return datetime.isoformat  # type: ignore[return-value]
    if name == "batch":
        return lambda v: "t" if v else "f"
    if name in ("units", "tags"):
        return _json
    column_type = calls.c[name].type.python_type if name != "cost_usd" else Decimal
    return _plain if column_type in (int, Decimal) else _text


_CONVERTERS = tuple((name, _converter(name)) for name in _COLUMNS)


def copy_buffer(events: Sequence[CallEvent]) -> io.StringIO:
    """The events as COPY text: one line per call, tab-separated, \\N for NULL."""
    out = []
    for e in events:
        out.append(
            "\t".join(
                [NULL if (v := getattr(e, name)) is None else conv(v) for name, conv in _CONVERTERS]
            )
        )
    out.append("")
    return io.StringIO("\n".join(out))


def _rollup_of(moved: Any) -> Any:
    """INSERT ... SELECT of the moved calls' totals into the daily rollups, adding on conflict."""
    day = cast(func.timezone("UTC", moved.c.occurred_at), Date)
    keys = [
        day,
        func.coalesce(moved.c.user_id, ""),
        func.coalesce(moved.c.feature, ""),
        moved.c.provider,
        moved.c.model,
    ]
    totals = {
        "calls": func.count(),
        "error_calls": func.sum(case((moved.c.status != "ok", 1), else_=0)),
        "unpriced_calls": func.sum(case((moved.c.cost_usd.is_(None), 1), else_=0)),
        **{name: func.coalesce(func.sum(moved.c[name]), 0) for name in TOKEN_FIELDS},
        "duration_ms_sum": func.coalesce(func.sum(moved.c.duration_ms), 0),
        "cost_usd": func.coalesce(func.sum(moved.c.cost_usd), literal(0)),
    }
    assert set(totals) == {*ROLLUP_COUNTS, "cost_usd"}
    source = select(*keys, *totals.values()).group_by(*keys).order_by(*keys)
    upsert = pg_insert(daily_rollups).from_select([*ROLLUP_KEYS, *totals], source)
    return upsert.on_conflict_do_update(
        index_elements=[daily_rollups.c[k] for k in ROLLUP_KEYS],
        set_={name: daily_rollups.c[name] + upsert.excluded[name] for name in totals},
    )


def write_new_calls(conn: Connection, events: Sequence[CallEvent]) -> int:
    """Store the calls whose ids are new and add them to the rollups; returns how many."""
    stage.create(conn)
    raw = conn.connection.dbapi_connection
    assert raw is not None
    with raw.cursor() as cursor:
        cursor.copy_expert(_COPY_SQL, copy_buffer(events))
    new_ids = (
        pg_insert(call_ids)
        .from_select(["id", "occurred_at"], select(stage.c.id, stage.c.occurred_at))
        .on_conflict_do_nothing(index_elements=[call_ids.c.id])
        .returning(call_ids.c.id)
        .cte("new_ids")
    )
    moved = (
        insert(calls)
        .from_select(
            list(_COLUMNS),
            select(*(stage.c[name] for name in _COLUMNS)).join(new_ids, new_ids.c.id == stage.c.id),
        )
        .returning(*calls.columns)
        .cte("moved")
    )
    rolled = _rollup_of(moved).cte("rolled")
    count = select(func.count()).select_from(moved).add_cte(new_ids, moved, rolled)
    return int(conn.execute(count).scalar_one())
