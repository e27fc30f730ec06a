"""What-if scenarios saved by name in the ``scenarios`` table: save (add or replace), load,
list, delete, each write audited in its transaction; and two or more compared side by side.
The caller checks the editor role (``dashboard.access``) before a write.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from sqlalchemy import Connection, delete, insert, select, update

from dashboard.economics.whatif import (
    LeverError,
    Levers,
    Projection,
    levers_from_params,
    levers_to_params,
    validate_levers,
)
from tracking.audit import record_change
from tracking.schema import scenarios
from tracking.write_lock import take_write_lock

MAX_NAME = 200


@dataclass(frozen=True)
class SavedScenario:
    name: str
    levers: Levers
    created_at: datetime
    created_by: str | None
    updated_at: datetime
    updated_by: str | None


def check_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise LeverError("name", "a scenario needs a name")
    if name != name.strip():
        raise LeverError("name", f"{name!r} has spaces at its ends")
    if len(name) > MAX_NAME:
        raise LeverError("name", f"is longer than {MAX_NAME} characters")
    return name


def _saved(row: Any) -> SavedScenario:
    return SavedScenario(
        row.name,
        validate_levers(levers_from_params(row.params), None),
        row.created_at,
        row.created_by,
        row.updated_at,
        row.updated_by,
    )


SCENARIO_LOCK = 7_401_018  # the PostgreSQL advisory lock every writer of scenarios takes


def lock_scenarios(conn: Connection) -> None:
    """Serialise scenario writes, before anything is read, so that two saves under one name at
    once are an add then a replacement (its old levers audited), never a duplicate-key error.
    PostgreSQL: an advisory transaction lock; SQLite: its write lock (a write matching nothing)."""
    take_write_lock(conn, SCENARIO_LOCK, scenarios, "name")


def replaced(saved: SavedScenario) -> bool:
    """Whether a save replaced a scenario saved before under its name (the page says so)."""
    return saved.created_at != saved.updated_at


def load_scenario(conn: Connection, name: str) -> SavedScenario | None:
    row = conn.execute(select(scenarios).where(scenarios.c.name == name)).first()
    return None if row is None else _saved(row)


def list_scenarios(conn: Connection) -> list[SavedScenario]:
    """Every saved scenario, by name."""
    return [_saved(r) for r in conn.execute(select(scenarios).order_by(scenarios.c.name))]


def save_scenario(
    conn: Connection, name: str, levers: Levers, who: str, now: datetime | None = None
) -> SavedScenario:
    """Store ``levers`` as ``name`` (a new one: action "add"; an existing one replaced: "edit",
    its old levers in the audit row), in the caller's transaction. Bad levers or a bad name
    are refused (LeverError) and nothing is written."""
    check_name(name)
    params = levers_to_params(validate_levers(levers, None))
    when = (now or datetime.now(UTC)).astimezone(UTC)
    lock_scenarios(conn)
    found = conn.execute(select(scenarios.c.params).where(scenarios.c.name == name)).first()
    if found is None:
        conn.execute(
            insert(scenarios).values(
                name=name,
                params=params,
                created_at=when,
                created_by=who,
                updated_at=when,
                updated_by=who,
            )
        )
        record_change(conn, who, "add", scenarios.name, name, None, params)
    else:
        conn.execute(
            update(scenarios)
            .where(scenarios.c.name == name)
            .values(params=params, updated_at=when, updated_by=who)
        )
        record_change(conn, who, "edit", scenarios.name, name, found.params, params)
    saved = load_scenario(conn, name)
    if saved is None:  # written above in this transaction: only a broken store gets here
        raise RuntimeError(f"the scenario {name!r} just saved is not in the store")
    return saved


def delete_scenario(conn: Connection, name: str, who: str) -> SavedScenario:
    """Delete ``name`` and audit it (action "remove", its levers as before); an unknown name
    is refused (LeverError), nothing written."""
    lock_scenarios(conn)
    found = load_scenario(conn, name)
    if found is None:
        raise LeverError("name", f"no scenario named {name!r}")
    conn.execute(delete(scenarios).where(scenarios.c.name == name))
    record_change(conn, who, "remove", scenarios.name, name, levers_to_params(found.levers), None)
    return found


def compare(projections: Sequence[tuple[str, Projection]]) -> pd.DataFrame:
    """Scenarios side by side: one row per month, one column of exact cost (decimal text) per
    scenario, and a last row with each horizon's total."""
    months = max((len(p.months) for _, p in projections), default=0)
    rows: list[dict[str, Any]] = []
    for m in range(months):
        row: dict[str, Any] = {"month": str(m + 1)}
        for name, projection in projections:
            row[name] = str(projection.months[m].cost) if m < len(projection.months) else ""
        rows.append(row)
    rows.append({"month": "total", **{n: str(p.total) for n, p in projections}})
    return pd.DataFrame(rows)
