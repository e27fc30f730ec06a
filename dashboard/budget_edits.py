"""Edits of the budgets from the Budgets page's table: every bad cell named by its row and
column with ``validate_budget``'s own rules, nothing saved while one is, and a save that adds,
changes and removes budgets in one transaction, an audit row each.

Plain functions (no Streamlit). The table's state is a data editor's (``edited_rows``,
``added_rows``, ``deleted_rows``): rows numbered 1-based as the table shows them, added rows
after the stored ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

import pandas as pd
from sqlalchemy import Engine

from dashboard.account_edits import blank
from dashboard.formats import cell_message
from tracking.budget_store import (
    Budget,
    BudgetError,
    add_budget,
    change_budget,
    remove_budget,
    validate_budget,
)
from tracking.schema import DEFAULT_THRESHOLDS
from tracking.sqltypes import plain_decimal

# the table's columns, as the page labels them (a cell's problem names the label)
LABELS = {
    "name": "Name",
    "limit_usd": "Limit ($)",
    "period": "Period",
    "timezone": "Timezone",
    "user_id": "User",
    "customer_id": "Customer",
    "feature": "Feature",
    "provider": "Provider",
    "model": "Model",
    "tag": "Tag (key=value)",
    "thresholds": "Alerts at (%)",
    "hard": "Hard",
    "rollover": "Rollover",
}
COLUMNS = list(LABELS)
TEXT_FIELDS = ("name", "period", "timezone", "user_id", "customer_id", "feature", "provider")
TEXT_FIELDS += ("model",)
# a budget every field of which is valid: one cell at a time is put into it and checked
_GOOD = Budget(name="budget", limit_usd=Decimal(0))


@dataclass(frozen=True)
class CellProblem:
    row: int | None  # 1-based, as the table numbers rows; None: the edit as a whole
    column: str | None
    message: str

    def __str__(self) -> str:
        label = None if self.column is None else LABELS.get(self.column, self.column)
        return cell_message(self.row, label, self.message)


@dataclass
class BudgetPlan:
    """What a save would do, or the problems that stop it."""

    adds: list[Budget] = field(default_factory=list)
    changes: list[Budget] = field(default_factory=list)
    removes: list[str] = field(default_factory=list)
    problems: list[CellProblem] = field(default_factory=list)
    # the stored budgets the edit began from, by name: a save refuses one changed since
    began: dict[str, Budget] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not (self.adds or self.changes or self.removes)


def budgets_frame(budgets: Sequence[Budget]) -> pd.DataFrame:
    """The budgets as the table shows them: money and thresholds as text, a blank scope cell
    meaning any."""
    rows = [
        {
            "name": b.name,
            "limit_usd": plain_decimal(b.limit_usd),
            "period": b.period,
            "timezone": b.timezone,
            **{k: getattr(b, k) for k in TEXT_FIELDS[3:]},
            "tag": None if b.tag_key is None else f"{b.tag_key}={b.tag_value}",
            "thresholds": ",".join(str(t) for t in b.thresholds),
            "hard": b.hard,
            "rollover": b.rollover,
        }
        for b in budgets
    ]
    return pd.DataFrame(rows, columns=COLUMNS).astype(object)


def _text(value: Any) -> str | None:
    return None if blank(value) else str(value)


def _flag(value: Any) -> Any:
    return False if blank(value) else value


def _column(field: str | None) -> str:
    """The table's column of a budget's field (a tag is one column)."""
    return "tag" if field is None or field.startswith("tag") else field


def read_row(number: int, cells: Mapping[str, Any]) -> tuple[Budget | None, list[CellProblem]]:
    """One row's budget, or every problem of its cells (each checked with
    ``validate_budget``, alone in a budget that is otherwise valid)."""
    problems: list[CellProblem] = []
    values: dict[str, Any] = {k: _text(cells.get(k)) for k in TEXT_FIELDS}
    values["period"] = values["period"] or "month"
    values["timezone"] = values["timezone"] or "UTC"
    values["limit_usd"] = cells.get("limit_usd")
    if blank(values["limit_usd"]):
        problems.append(CellProblem(number, "limit_usd", "give a limit in dollars, e.g. 500"))
        values["limit_usd"] = Decimal(0)
    if values["name"] is None:
        problems.append(CellProblem(number, "name", "give the budget a name"))
        values["name"] = _GOOD.name
    values["tag_key"] = values["tag_value"] = None
    tag = _text(cells.get("tag"))
    if tag is not None:
        key, sep, value = tag.partition("=")
        if not sep or not key.strip() or not value.strip():
            problems.append(
                CellProblem(number, "tag", f"{tag!r}: write key=value, e.g. team=growth")
            )
        else:
            values["tag_key"], values["tag_value"] = key.strip(), value.strip()
    text = _text(cells.get("thresholds"))
    if text is None:
        values["thresholds"] = DEFAULT_THRESHOLDS
    else:
        values["thresholds"] = [p.strip().removesuffix("%").strip() for p in text.split(",")]
    values["hard"], values["rollover"] = _flag(cells.get("hard")), _flag(cells.get("rollover"))
    for name, value in values.items():
        if name in ("tag_key", "tag_value"):
            continue
        try:
            validate_budget(replace(_GOOD, **{name: value}))
        except BudgetError as exc:
            problems.append(CellProblem(number, name, exc.reason))
    if problems:
        return None, sorted(problems, key=lambda p: COLUMNS.index(_column(p.column)))
    try:
        return validate_budget(Budget(**values)), []
    except BudgetError as exc:  # a rule of two fields together
        return None, [CellProblem(number, _column(exc.field), exc.reason)]


def plan_edits(stored: Sequence[Budget], state: Mapping[str, Any] | None) -> BudgetPlan:
    """The edit the table's ``state`` holds against the ``stored`` budgets it began from."""
    plan = BudgetPlan()
    state = state or {}
    start = budgets_frame(stored).to_dict("records")
    deleted = {int(p) for p in state.get("deleted_rows") or [] if 0 <= int(p) < len(start)}
    edited = {int(p): dict(c or {}) for p, c in (state.get("edited_rows") or {}).items()}
    rows: list[tuple[int, Budget | None, dict[str, Any]]] = []
    for position, record in enumerate(start):
        if position in deleted or position in edited:
            plan.began[stored[position].name] = stored[position]
        if position in deleted:
            plan.removes.append(stored[position].name)
        elif position in edited:
            rows.append((position + 1, stored[position], record | edited[position]))
    for i, added in enumerate(state.get("added_rows") or []):
        cells = {c: (added or {}).get(c) for c in COLUMNS}
        if any(not blank(v) and v is not False for v in cells.values()):
            rows.append((len(start) + i + 1, None, cells))
    kept = {b.name for i, b in enumerate(stored) if i not in deleted}
    named: dict[str, int] = {}
    for number, before, cells in rows:
        budget, problems = read_row(number, cells)
        plan.problems += problems
        if budget is None:
            continue
        if before is not None and budget.name != before.name:
            plan.problems.append(
                CellProblem(
                    number,
                    "name",
                    f"a saved budget keeps its name ({before.name!r}): add a new row and delete "
                    "this one to rename it",
                )
            )
        elif before is None and (budget.name in kept or budget.name in named):
            plan.problems.append(
                CellProblem(number, "name", f"a budget named {budget.name!r} exists already")
            )
        elif before is None:
            named[budget.name] = number
            plan.adds.append(budget)
        elif budget != before:
            plan.changes.append(budget)
    return plan


def save_plan(engine: Engine, plan: BudgetPlan, who: str) -> None:
    """Write the plan in one transaction (an audit row per budget): all of it, or nothing,
    with BudgetError when the store refuses (a budget added, changed or removed by someone else
    since the edit began: the second of two editors is refused, never overwrites the first)."""
    if plan.problems:
        raise ValueError("a plan with problems is not saved")
    with engine.begin() as conn:
        for name in plan.removes:
            remove_budget(conn, name, who, plan.began.get(name))
        for budget in plan.changes:
            change_budget(conn, budget, who, plan.began.get(budget.name))
        for budget in plan.adds:
            add_budget(conn, budget, who)
