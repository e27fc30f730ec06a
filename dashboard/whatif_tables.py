"""The What-if tab's three tables (price changes, feature moves, a draft price table) read into
levers: every bad cell named by its row and column with ``economics.whatif``'s own messages,
and no levers at all while one is; and saved levers turned back into the tables' rows.

Plain functions (no Streamlit). Rows are dicts as an edited table gives them (numbered 1-based
as the table shows them); a row with every cell blank is ignored (a table's empty new row).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from dashboard.economics.whatif import LeverError, Levers, Move, Rates, validate_levers

PRICE_LABELS = {"model": "Model", "change_pct": "Change %"}
MOVE_LABELS = {
    "feature": "Feature",
    "from_model": "From model",
    "to_model": "To model",
    "input_ratio": "Input tokens x",
    "output_ratio": "Output tokens x",
}
DRAFT_LABELS = {"model": "Model", "unit": "Unit", "usd_per_1m": "$ per 1M tokens"}
# each table's name in its cells' problems, by the page's key of it
TABLE_NAMES = {"prices": "Price changes", "drafts": "Draft prices", "moves": "Feature moves"}
_SOME_MODEL = "provider/model"  # a well-formed model, for checking one other cell at a time


@dataclass(frozen=True)
class CellProblem:
    table: str
    row: int  # 1-based, as the table numbers rows
    column: str | None  # the column's label; None: the row as a whole
    message: str

    def __str__(self) -> str:
        where = f"{self.table}, row {self.row}" + (f", {self.column}" if self.column else "")
        return f"{where}: {self.message}"


@dataclass
class TableLevers:
    """The tables' levers, or the problems that stop every one of them."""

    price_pct: dict[str, Decimal] = field(default_factory=dict)
    draft_prices: dict[str, dict[str, Decimal]] = field(default_factory=dict)
    moves: tuple[Move, ...] = ()
    problems: list[CellProblem] = field(default_factory=list)


def _text(value: Any) -> str:
    """A cell as text: None and NaN (an empty cell) are ''."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return str(value).strip()


def _rows(rows: Sequence[Mapping[str, Any]], columns: Mapping[str, str]) -> list[dict[str, str]]:
    return [{c: _text(row.get(c)) for c in columns} for row in rows]


def _check(
    table: str, row: int, column: str, probe: Levers, rates: Rates | None
) -> CellProblem | None:
    """``validate_levers``' refusal of ``probe`` (one cell put into good levers), or None."""
    try:
        validate_levers(probe, rates)
    except LeverError as exc:
        return CellProblem(table, row, column, exc.reason)
    return None


def _levers(**given: Any) -> Levers:
    """Levers holding cells as typed (text): ``validate_levers`` turns them into numbers."""
    return Levers(**given)


def _move(feature: str, to_model: str, **given: Any) -> Move:
    return Move(feature, to_model, **given)


def _drafts(
    rows: Sequence[Mapping[str, Any]],
) -> tuple[dict[str, dict[str, Decimal]], list[CellProblem]]:
    table, labels = TABLE_NAMES["drafts"], DRAFT_LABELS
    drafts: dict[str, dict[str, Decimal]] = {}
    problems = []
    for n, cells in enumerate(_rows(rows, labels), start=1):
        if not any(cells.values()):
            continue
        model, unit, rate = cells["model"], cells["unit"], cells["usd_per_1m"]
        probes = {
            "model": _levers(draft_prices={model: {}}),
            "unit": _levers(draft_prices={_SOME_MODEL: {unit: 0}}),
            "usd_per_1m": _levers(draft_prices={_SOME_MODEL: {"input_tokens": rate}}),
        }
        bad = [
            p
            for c, probe in probes.items()
            if (p := _check(table, n, labels[c], probe, None)) is not None
        ]
        if not bad and unit in drafts.get(model, {}):
            bad = [CellProblem(table, n, None, f"{model} {unit} is drafted twice")]
        problems += bad
        if not bad:
            checked = validate_levers(_levers(draft_prices={model: {unit: rate}}), None)
            drafts.setdefault(model, {})[unit] = checked.draft_prices[model][unit]
    return drafts, problems


def _prices(rows: Sequence[Mapping[str, Any]]) -> tuple[dict[str, Decimal], list[CellProblem]]:
    table, labels = TABLE_NAMES["prices"], PRICE_LABELS
    prices: dict[str, Decimal] = {}
    problems = []
    for n, cells in enumerate(_rows(rows, labels), start=1):
        if not any(cells.values()):
            continue
        model, pct = cells["model"], cells["change_pct"]
        probes = {
            "model": _levers(price_pct={model: 0}),
            "change_pct": _levers(price_pct={_SOME_MODEL: pct}),
        }
        bad = [
            p
            for c, probe in probes.items()
            if (p := _check(table, n, labels[c], probe, None)) is not None
        ]
        if not bad and model in prices:
            bad = [CellProblem(table, n, None, f"{model} has two price changes")]
        problems += bad
        if not bad:
            prices[model] = validate_levers(_levers(price_pct={model: pct}), None).price_pct[model]
    return prices, problems


def _moves(
    rows: Sequence[Mapping[str, Any]], rates: Rates, drafts: Mapping[str, Mapping[str, Decimal]]
) -> tuple[tuple[Move, ...], list[CellProblem]]:
    table, labels = TABLE_NAMES["moves"], MOVE_LABELS
    moves: list[Move] = []
    problems = []
    for n, cells in enumerate(_rows(rows, labels), start=1):
        if not any(cells.values()):
            continue
        feature, source, target = cells["feature"], cells["from_model"] or None, cells["to_model"]
        ratios = {"input_ratio": cells["input_ratio"] or "1"}
        ratios["output_ratio"] = cells["output_ratio"] or "1"
        probes = {  # the target is checked against the rates: it needs a price
            "feature": (_move(feature, _SOME_MODEL), None),
            "from_model": (_move("f", _SOME_MODEL, from_model=source), None),
            "to_model": (_move("f", target), rates),
            **{r: (_move("f", _SOME_MODEL, **{r: v}), None) for r, v in ratios.items()},
        }
        bad = [
            p
            for c, (probe, against) in probes.items()
            if (
                p := _check(
                    table, n, labels[c], _levers(moves=(probe,), draft_prices=drafts), against
                )
            )
            is not None
        ]
        move = _move(feature, target, from_model=source, **ratios)
        if not bad:
            try:  # the rows so far together: a feature moved twice from one model is refused
                together = _levers(moves=(*moves, move), draft_prices=drafts)
                moves = list(validate_levers(together, rates).moves)
            except LeverError as exc:
                bad = [CellProblem(table, n, None, exc.reason)]
        problems += bad
    return tuple(moves), problems


def read_tables(
    prices: Sequence[Mapping[str, Any]],
    moves: Sequence[Mapping[str, Any]],
    drafts: Sequence[Mapping[str, Any]],
    rates: Rates,
) -> TableLevers:
    """The three tables' levers, checked as ``simulate`` checks them (a move's target priced by
    ``rates`` or by the draft table); on any problem, the problems and no levers."""
    draft_prices, problems = _drafts(drafts)
    price_pct, more = _prices(prices)
    problems += more
    checked_moves, more = _moves(moves, rates, draft_prices)
    problems += more
    if problems:
        return TableLevers(problems=problems)
    return TableLevers(price_pct, draft_prices, checked_moves)


def table_rows(levers: Levers) -> dict[str, list[dict[str, str]]]:
    """Saved levers as the three tables' rows (every number as its decimal text)."""
    return {
        "prices": [{"model": k, "change_pct": str(v)} for k, v in levers.price_pct.items()],
        "moves": [
            {
                "feature": m.feature,
                "from_model": m.from_model or "",
                "to_model": m.to_model,
                "input_ratio": str(m.input_ratio),
                "output_ratio": str(m.output_ratio),
            }
            for m in levers.moves
        ],
        "drafts": [
            {"model": k, "unit": u, "usd_per_1m": str(r)}
            for k, units in levers.draft_prices.items()
            for u, r in units.items()
        ],
    }
