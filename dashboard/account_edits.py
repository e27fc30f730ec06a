"""The accounts editors' rules: the tables plans, customers (subscription terms and their user
ids) and revenue lines are edited in, and what saving an edited table writes. Plain functions,
no Streamlit; ``dashboard.accounts_view`` draws them.

An edit is read from a data editor's state (``edited_rows``, ``added_rows``, ``deleted_rows``)
over the table it began from (``Start``). Every bad cell is a ``Problem`` naming its row (1-based,
as the table shows it) and column, and nothing is written while there is one. Only the rows the
user changed or added are written, through ``dashboard.accounts.write_*`` (upserts, an audit row
each): a row someone else saved meanwhile is not put back, and one the user changed that someone
else changed since is a conflict that refuses the save.

Nothing is deleted from the store here, and nothing the user did is dropped silently: a deleted
row refuses the save (a plan is retired with its offer's last day, a term ended with its end),
and so does a user id taken off a customer without being given to another, and a changed key (a
plan's name, a term's customer or start, a revenue id), which would add a row beside the stored
one rather than change it.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import pandas as pd
from sqlalchemy import Connection

from dashboard.account_import import Preview, parse_users
from dashboard.accounts import (
    KEY_LENGTH,
    MAX_MONEY,
    PERIODS,
    Written,
    customer_ids,
    discount_problem,
    load_plans,
    load_revenue,
    load_terms,
    load_users,
    lock_accounts,
    plan_problems,
    revenue_id,
    seats_problem,
    term_problems,
    write_plans,
    write_revenue,
    write_terms,
    write_users,
)
from dashboard.economics import Plan, RevenueLine, Term
from tracking.events import unstorable
from tracking.sqltypes import NANO, plain_decimal

KINDS = ("plans", "customers", "revenue")

# kind -> column -> label, in the tables' order
COLUMNS: dict[str, dict[str, str]] = {
    "plans": {
        "name": "Name",
        "price": "Price ($)",
        "period": "Period",
        "included_usage": "Included usage ($)",
        "active_from": "Offered from",
        "active_to": "Offered until",
    },
    "customers": {
        "customer_id": "Customer id",
        "start": "Start",
        "name": "Name",
        "plan": "Plan",
        "end": "End",
        "seats": "Seats",
        "discount_pct": "Discount (%)",
        "custom_price": "Custom price ($/month)",
        "users": "User ids",
    },
    "revenue": {
        "id": "Revenue id",
        "customer_id": "Customer id",
        "start": "From",
        "end": "To",
        "amount": "Amount ($)",
        "note": "Note",
    },
}
DATE_COLUMNS = frozenset({"active_from", "active_to", "start", "end"})
# what Written counts are called when a save reports them
TABLE_NAMES = {
    "plans": "plans",
    "customers": "customer terms",
    "customer_users": "user ids",
    "revenue": "revenue lines",
}
MAX_TEXT = 100_000  # a name or a note longer than this is a paste gone wrong


@dataclass(frozen=True)
class Problem:
    """What stops a save: a bad cell (``row`` 1-based as the table shows it, ``column`` a
    table column), a bad row (no column) or the edit as a whole (neither). ``which`` names the
    row's plan, customer term or revenue line, to find it by."""

    row: int | None
    column: str | None
    message: str
    which: str = ""
    label: str = ""  # the column's label

    def __str__(self) -> str:
        where = []
        if self.row is not None:
            where.append(f"Row {self.row}" + (f" ({self.which})" if self.which else ""))
        if self.column is not None:
            where.append(self.label or self.column)
        return f"{', '.join(where)}: {self.message}" if where else self.message


def problems_frame(problems: Sequence[Problem]) -> pd.DataFrame:
    """The problems as a table (shown as text, whatever the cells hold)."""
    return pd.DataFrame(
        {
            "Row": pd.array([p.row for p in problems], dtype="Int64"),
            "Of": [p.which for p in problems],
            "Column": [p.label or p.column or "" for p in problems],
            "Problem": [p.message for p in problems],
        }
    )


class EditRefused(Exception):
    """A save refused: its problems (bad cells, deleted rows) or conflicts, nothing written."""

    def __init__(self, problems: Sequence[Problem], conflict: bool = False) -> None:
        self.problems = list(problems)
        self.conflict = conflict
        super().__init__("; ".join(str(p) for p in self.problems))


# --- the tables ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Start:
    """What an edit began from: the table shown, the stored rows it holds (by position: a Plan,
    a Term or a (revenue id, RevenueLine)), and, for customers, which customer each user id
    was shown under and the plans a term may name."""

    kind: str
    frame: pd.DataFrame
    rows: tuple[Any, ...]
    users: Mapping[str, str] = field(default_factory=dict)
    plans: tuple[str, ...] = ()


def _money_text(amount: Decimal | None) -> str | None:
    return None if amount is None else plain_decimal(amount)


def _dates(values: Iterable[date | None]) -> pd.Series:
    return pd.Series(list(values), dtype="object")


def _texts(values: Iterable[str | None]) -> pd.Series:
    """Text cells (typed so even when none, so that an empty table's columns take text)."""
    return pd.Series(list(values), dtype="string")


def plans_frame(plans: Sequence[Plan]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "name": _texts(p.name for p in plans),
            "price": _texts(_money_text(p.price) for p in plans),
            "period": _texts(p.period for p in plans),
            "included_usage": _texts(_money_text(p.included_usage) for p in plans),
            "active_from": _dates(p.active_from for p in plans),
            "active_to": _dates(p.active_to for p in plans),
        },
        columns=list(COLUMNS["plans"]),
    )


def users_by_customer(users: Mapping[str, str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for user_id, customer_id in sorted(users.items()):
        found.setdefault(customer_id, []).append(user_id)
    return found


def terms_frame(terms: Sequence[Term], users: Mapping[str, str]) -> pd.DataFrame:
    """One row per term; the users column lists the customer's user ids (the same on each of
    its terms), separated by "; "."""
    by_customer = users_by_customer(users)
    return pd.DataFrame(
        {
            "customer_id": _texts(t.customer_id for t in terms),
            "start": _dates(t.start for t in terms),
            "name": _texts(t.name for t in terms),
            "plan": _texts(t.plan for t in terms),
            "end": _dates(t.end for t in terms),
            "seats": pd.Series([t.seats for t in terms], dtype="int64"),
            "discount_pct": _texts(plain_decimal(t.discount_pct) for t in terms),
            "custom_price": _texts(_money_text(t.custom_price) for t in terms),
            "users": _texts("; ".join(by_customer.get(t.customer_id, [])) for t in terms),
        },
        columns=list(COLUMNS["customers"]),
    )


def revenue_frame(lines: Mapping[str, RevenueLine]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": _texts(lines),
            "customer_id": _texts(x.customer_id for x in lines.values()),
            "start": _dates(x.start for x in lines.values()),
            "end": _dates(x.end for x in lines.values()),
            "amount": _texts(plain_decimal(x.amount) for x in lines.values()),
            "note": _texts(x.note for x in lines.values()),
        },
        columns=list(COLUMNS["revenue"]),
    )


def start(conn: Connection, kind: str) -> Start:
    """The table an edit of ``kind`` begins from, read from the store now."""
    if kind == "plans":
        plans = list(load_plans(conn).values())
        return Start(kind, plans_frame(plans), tuple(plans))
    if kind == "customers":
        terms = load_terms(conn)
        users = load_users(conn)
        names = tuple(load_plans(conn))
        return Start(kind, terms_frame(terms, users), tuple(terms), users, names)
    if kind == "revenue":
        lines = load_revenue(conn)
        return Start(kind, revenue_frame(lines), tuple(lines.items()))
    raise ValueError(f"unknown accounts table {kind!r}: one of {', '.join(KINDS)}")


def pending(state: Mapping[str, Any] | None) -> bool:
    """Whether a data editor's state holds edits."""
    state = state or {}
    return any(state.get(part) for part in ("edited_rows", "added_rows", "deleted_rows"))


# --- cells --------------------------------------------------------------------------------------


def blank(value: Any) -> bool:
    if value is None or value is pd.NaT or value is pd.NA:
        return True
    if isinstance(value, float) and value != value:
        return True
    return isinstance(value, str) and not value.strip()


_AMOUNT = re.compile(r"-?(\d+(\.\d*)?|\.\d+)")
_GROUPED = re.compile(r"-?\d{1,3}(,\d{3})+(\.\d+)?")
_DAY = re.compile(r"(\d{4}-\d{2}-\d{2})([ T][0-9:.]*(Z|[+-]\d{2}:?\d{2})?)?")


class _Row:
    """One row of an edited table: its cells read one by one, every bad one a Problem."""

    def __init__(self, kind: str, number: int, which: str, cells: Mapping[str, Any]) -> None:
        self.kind = kind
        self.number = number
        self.which = which
        self.cells = cells
        self.problems: list[Problem] = []

    def bad(self, column: str | None, message: str) -> None:
        label = COLUMNS[self.kind].get(column, column or "") if column else ""
        self.problems.append(Problem(self.number, column, message, self.which, label))

    @property
    def ok(self) -> bool:
        return not self.problems

    def raw(self, column: str) -> Any:
        value = self.cells.get(column)
        return None if blank(value) else value

    def text(self, column: str) -> str | None:
        value = self.raw(column)
        if value is None:
            return None
        text = str(value).strip()
        if why := unstorable(text):
            self.bad(column, why)
            return None
        if len(text) > MAX_TEXT:
            self.bad(column, f"is longer than {MAX_TEXT:,} characters")
            return None
        return text

    def key(self, column: str, needed: str) -> str | None:
        value = self.text(column)
        if value is None:
            if not any(p.column == column for p in self.problems):
                self.bad(column, needed)
            return None
        if len(value) > KEY_LENGTH:
            self.bad(column, f"is longer than {KEY_LENGTH} characters")
            return None
        return value

    def money(self, column: str, needed: str | None = None) -> Decimal | None:
        value = self.raw(column)
        if value is None:
            if needed:
                self.bad(column, needed)
            return None
        raw = str(value).strip()
        cleaned = raw.replace("$", "", 1).strip() if raw.startswith(("$", "-$")) else raw
        if _GROUPED.fullmatch(cleaned):
            cleaned = cleaned.replace(",", "")
        if isinstance(value, bool) or not _AMOUNT.fullmatch(cleaned):
            self.bad(column, f"{raw!r} is not an amount of dollars (write e.g. 49.00)")
            return None
        amount = Decimal(cleaned)
        if amount < 0:
            self.bad(column, f"{raw} is negative: amounts are 0 or more")
        elif amount >= MAX_MONEY:  # first: quantizing 1e19 to the nano-dollar raises
            self.bad(column, f"{raw} is too large (under a billion dollars)")
        elif amount != amount.quantize(NANO):
            self.bad(column, f"{raw} is finer than a nano-dollar (9 decimal places)")
        else:
            return amount
        return None

    def day(self, column: str, needed: str | None = None) -> date | None:
        value = self.raw(column)
        if value is None:
            if needed:
                self.bad(column, needed)
            return None
        if isinstance(value, datetime | pd.Timestamp):
            return value.date()
        if isinstance(value, date):
            return value
        match = _DAY.fullmatch(str(value).strip())
        if match:
            try:
                return date.fromisoformat(match.group(1))
            except ValueError:
                pass
        self.bad(column, f"{str(value)!r} is not a date (YYYY-MM-DD)")
        return None

    def seats(self, column: str) -> int | None:
        value = self.raw(column)
        if value is None:
            return 1
        number: Any = value
        if isinstance(value, float) and value.is_integer():
            number = int(value)
        elif isinstance(value, str):
            try:
                parsed = Decimal(value.strip().replace(",", ""))
                number = int(parsed) if parsed.is_finite() and parsed == int(parsed) else value
            except (InvalidOperation, ValueError):
                number = value
        problem = seats_problem(number)
        if problem:
            self.bad(column, problem)
            return None
        return int(number)

    def discount(self, column: str) -> Decimal | None:
        value = self.raw(column)
        if value is None:
            return Decimal(0)
        raw = str(value).strip().removesuffix("%").strip()
        try:
            number = Decimal(raw)
        except InvalidOperation:
            self.bad(column, f"{str(value)!r} is not a percentage (write 0-100, e.g. 15)")
            return None
        problem = discount_problem(number)
        if problem:
            self.bad(column, problem)
            return None
        return number


# --- reading an edit ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    number: int  # 1-based, as the table shows it
    position: int | None  # the start row it edits; None: added
    cells: dict[str, Any]
    touched: frozenset[str]  # the columns the user edited (every one of an added row)


def _entries(start: Start, state: Mapping[str, Any]) -> tuple[list[_Entry], list[int]]:
    """Every row of the edited table, and the positions of the rows deleted."""
    columns = list(COLUMNS[start.kind])
    edited: dict[int, Mapping[str, Any]] = {}
    for position, changes in (state.get("edited_rows") or {}).items():
        edited[int(position)] = {c: v for c, v in (changes or {}).items() if c in columns}
    entries: list[_Entry] = []
    records = start.frame.to_dict("records")
    for position, record in enumerate(records):
        changes = edited.get(position, {})
        cells = {c: record.get(c) for c in columns} | dict(changes)
        entries.append(_Entry(position + 1, position, cells, frozenset(changes)))
    for i, added in enumerate(state.get("added_rows") or []):
        cells = {c: (added or {}).get(c) for c in columns}
        if all(blank(v) for v in cells.values()):
            continue  # a new row left empty
        entries.append(_Entry(len(records) + i + 1, None, cells, frozenset(columns)))
    deleted = sorted({int(p) for p in state.get("deleted_rows") or []})
    return entries, [p for p in deleted if 0 <= p < len(records)]


def _which(kind: str, row: Any) -> str:
    if kind == "plans":
        return f"plan {row.name!r}"
    if kind == "customers":
        return f"{row.customer_id!r} from {row.start.isoformat()}"
    rid, _line = row
    return f"revenue {rid!r}"


@dataclass
class Edit:
    """What saving an edited table would write: only the rows changed or added (and, for
    customers, the user ids given a customer or moved to another), each with the stored row it
    began from (None: added), which must still be the stored one when it is written."""

    kind: str
    problems: list[Problem] = field(default_factory=list)
    plans: list[Plan] = field(default_factory=list)
    terms: list[Term] = field(default_factory=list)
    users: dict[str, str] = field(default_factory=dict)
    revenue: dict[str, RevenueLine] = field(default_factory=dict)
    began: dict[Any, Any] = field(default_factory=dict)  # key -> the start row, None if added
    began_users: dict[str, str | None] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def empty(self) -> bool:
        return not (self.plans or self.terms or self.users or self.revenue)


def read_edit(
    start: Start,
    state: Mapping[str, Any] | None,
    plans: Collection[str] = (),
    customers: Collection[str] = (),
) -> Edit:
    """The edit a data editor's ``state`` makes of ``start``, checked cell by cell against the
    store's ``plans`` (the names a term may name) and ``customers`` (the ids a revenue line may
    name)."""
    entries, deleted = _entries(start, state or {})
    edit = Edit(start.kind)
    if deleted:
        for position in deleted:
            which = _which(start.kind, start.rows[position])
            edit.problems.append(
                Problem(
                    position + 1,
                    None,
                    "deleted, but rows are not deleted from the store here"
                    + _HOW_NOT_TO_DELETE[start.kind]
                    + ": discard the edits to get it back",
                    which,
                )
            )
        return edit
    if start.kind == "plans":
        _read_plans(start, entries, edit)
    elif start.kind == "customers":
        _read_terms(start, entries, edit, set(plans))
    else:
        _read_revenue(start, entries, edit, set(customers))
    if edit.problems:
        edit.plans, edit.terms, edit.users, edit.revenue = [], [], {}, {}
    return edit


_HOW_NOT_TO_DELETE = {
    "plans": " (retire a plan by its last day offered)",
    "customers": " (end a term by its end day)",
    "revenue": " (set a line billed by mistake to 0)",
}


def _row(start: Start, entry: _Entry) -> _Row:
    which = "new row" if entry.position is None else _which(start.kind, start.rows[entry.position])
    return _Row(start.kind, entry.number, which, entry.cells)


def _key_changed(row: _Row, column: str, what: str) -> None:
    row.bad(
        column,
        f"the {what} of a stored row cannot be changed here: saving would add a second row"
        " beside the stored one. Put it back, and add a new row instead",
    )


def _duplicate(row: _Row, seen: dict[Any, int], key: Any, column: str, what: str) -> None:
    if key in seen:
        row.bad(column, f"{what} is on row {seen[key]} too")
    else:
        seen[key] = row.number


def _untouched_keys(start: Start, entries: list[_Entry], key_of: Any) -> dict[Any, int]:
    """The keys of the stored rows the user left alone, with their row numbers."""
    return {
        key_of(start.rows[e.position]): e.number
        for e in entries
        if e.position is not None and not e.touched
    }


def _backstop(row: _Row, problems: list[str]) -> None:
    """What the store's own checks say that the cell checks did not (a row-level problem)."""
    for problem in problems:
        row.bad(None, problem)


def _read_plans(start: Start, entries: list[_Entry], edit: Edit) -> None:
    seen = _untouched_keys(start, entries, lambda p: p.name)
    for entry in entries:
        began: Plan | None = None if entry.position is None else start.rows[entry.position]
        if began is not None and not entry.touched:
            continue
        row = _row(start, entry)
        name = row.key("name", "a plan's name is needed")
        price = row.money("price", "a price is needed (dollars per seat and period)")
        period = row.text("period") or "month"
        if period not in PERIODS:
            row.bad("period", f"{period!r} is not month or year")
        included = row.money("included_usage")
        offered_from = row.day("active_from")
        offered_to = row.day("active_to")
        if offered_from and offered_to and offered_to < offered_from:
            row.bad("active_to", f"{offered_to} is before the day it is offered from")
        if name is not None:
            if began is not None and name != began.name:
                _key_changed(row, "name", "name")
            _duplicate(row, seen, name, "name", f"plan {name!r}")
        if row.ok:
            plan = Plan(name, price, period, included, offered_from, offered_to)  # type: ignore[arg-type]
            _backstop(row, plan_problems(plan))
            if row.ok and plan != began:
                edit.plans.append(plan)
                edit.began[plan.name] = began
        edit.problems += row.problems


def _read_terms(start: Start, entries: list[_Entry], edit: Edit, known: set[str]) -> None:
    seen = _untouched_keys(start, entries, lambda t: (t.customer_id, t.start))
    # customer -> [(its row, the user ids the row lists, whether the user gave them)]
    listed: dict[str, list[tuple[_Row, list[str], bool]]] = {}
    terms: list[tuple[Term, Term | None]] = []
    for entry in entries:
        began: Term | None = None if entry.position is None else start.rows[entry.position]
        row = _row(start, entry)
        if began is not None and not entry.touched:
            listed.setdefault(began.customer_id, [])
            continue
        customer = row.key("customer_id", "a customer id is needed")
        first = row.day("start", "the term's first day is needed")
        name = row.text("name") or customer
        plan = row.text("plan")
        end = row.day("end")
        seats = row.seats("seats")
        discount = row.discount("discount_pct")
        custom = row.money("custom_price")
        if first and end and end < first:
            row.bad("end", f"{end} is before the term's start ({first})")
        if plan is not None and plan not in known:
            row.bad("plan", f"unknown plan {plan!r} (add it to the plans, and save them, first)")
        if (
            plan is None
            and custom is None
            and "custom_price" not in {p.column for p in row.problems}
        ):
            row.bad("plan", "a plan or a custom price is needed")
        if began is not None:
            if customer is not None and customer != began.customer_id:
                _key_changed(row, "customer_id", "customer id")
            if first is not None and first != began.start:
                _key_changed(row, "start", "start")
        if customer is not None and first is not None:
            what = f"a term of {customer!r} from {first.isoformat()}"
            _duplicate(row, seen, (customer, first), "start", what)
        users_given = "users" in entry.touched and not (
            entry.position is None and row.raw("users") is None
        )
        user_ids = _user_ids(row)
        if customer is not None:
            listed.setdefault(customer, []).append((row, user_ids, users_given))
        if row.ok:
            term = Term(customer, name, plan, first, end, seats, discount, custom)  # type: ignore[arg-type]
            _backstop(row, term_problems(term, known))
            if row.ok and term != began:
                terms.append((term, began))
        edit.problems += row.problems
    if edit.problems:
        return
    for term, began in terms:
        edit.terms.append(term)
        edit.began[(term.customer_id, term.start)] = began
    _read_users(start, listed, edit)


def _user_ids(row: _Row) -> list[str]:
    text = row.text("users")
    found = parse_users(text or "")
    long = [u for u in found if len(u) > KEY_LENGTH]
    if long:
        row.bad("users", f"user id {long[0][:40]!r}... is longer than {KEY_LENGTH} characters")
    return found


def _read_users(
    start: Start, listed: Mapping[str, list[tuple[_Row, list[str], bool]]], edit: Edit
) -> None:
    """Each customer's user ids: what its rows that give them say (they must agree), else what
    was shown. A user id may move to another customer; one taken off a customer and given to
    none, or listed under two customers, refuses the save."""
    shown = users_by_customer(start.users)
    wanted: dict[str, list[str]] = {}
    given_on: dict[str, _Row] = {}
    for customer, rows in listed.items():
        given = [(row, users) for row, users, is_given in rows if is_given]
        if not given:
            wanted[customer] = shown.get(customer, [])
            continue
        first_row, first = given[0]
        for row, users in given[1:]:
            if set(users) != set(first):
                row.bad(
                    "users",
                    f"differs from row {first_row.number}, another term of {customer!r}: a"
                    " customer's user ids are the same on all its terms (give them once, or"
                    " the same on each)",
                )
        wanted[customer] = first
        given_on[customer] = first_row
    owner: dict[str, str] = {}
    for customer, users in wanted.items():
        for user_id in users:
            other = owner.setdefault(user_id, customer)
            if other != customer:
                row = given_on.get(customer) or given_on[other]
                row.bad(
                    "users",
                    f"user id {user_id!r} is listed under two customers: {other!r} and"
                    f" {customer!r} (a user id belongs to one customer)",
                )
    for customer, users in shown.items():
        if customer not in wanted:  # a customer without a term in the table: its users stay
            for user_id in users:
                other = owner.setdefault(user_id, customer)
                if other != customer:
                    given_on[other].bad(
                        "users",
                        f"user id {user_id!r} belongs to {customer!r}, which has no term here",
                    )
            continue
        taken_off = [u for u in users if u not in owner]
        if taken_off:
            row = given_on[customer]
            listed_ids = ", ".join(repr(u) for u in taken_off[:5])
            more = f" and {len(taken_off) - 5} more" if len(taken_off) > 5 else ""
            row.bad(
                "users",
                f"{listed_ids}{more} taken off {customer!r} and given to no other customer:"
                " user ids are not deleted from the store here (put them back, or list them"
                " under the customer they moved to)",
            )
    for rows in listed.values():
        for row, _users, _given in rows:
            edit.problems += [p for p in row.problems if p.column == "users"]
    if edit.problems:
        edit.terms = []
        return
    for user_id, customer in owner.items():
        if start.users.get(user_id) != customer:
            edit.users[user_id] = customer
            edit.began_users[user_id] = start.users.get(user_id)


def _read_revenue(start: Start, entries: list[_Entry], edit: Edit, known: set[str]) -> None:
    seen = _untouched_keys(start, entries, lambda r: r[0])
    for entry in entries:
        began = None if entry.position is None else start.rows[entry.position]
        row = _row(start, entry)
        if began is not None and not entry.touched:
            continue
        rid = row.text("id")
        if rid is not None and len(rid) > KEY_LENGTH:
            row.bad("id", f"is longer than {KEY_LENGTH} characters")
        customer = row.key("customer_id", "a customer id is needed")
        first = row.day("start", "the first day it pays for is needed")
        last = row.day("end", "the last day it pays for is needed")
        amount = row.money("amount", "an amount is needed (dollars)")
        note = row.text("note")
        if first and last and last < first:
            row.bad("end", f"{last} is before the first day it pays for ({first})")
        if customer is not None and customer not in known:
            row.bad(
                "customer_id",
                f"unknown customer {customer!r} (add its term in Customers, and save it, first)",
            )
        if began is not None and rid != began[0]:
            _key_changed(row, "id", "revenue id")
        if row.ok:
            line = RevenueLine(customer, first, last, amount, note)  # type: ignore[arg-type]
            rid = rid or revenue_id(line)
            what = f"revenue id {rid!r}" + (
                " (made from the customer, days and note)" if row.raw("id") is None else ""
            )
            _duplicate(row, seen, rid, "id", what)
            if row.ok and (began is None or line != began[1]):
                edit.revenue[rid] = line
                edit.began[rid] = None if began is None else began[1]
        edit.problems += row.problems


# --- saving -------------------------------------------------------------------------------------


def conflicts(conn: Connection, edit: Edit) -> list[Problem]:
    """The rows of the edit someone else saved since it began (compared in this transaction)."""
    found: list[str] = []

    def compare(what: str, began: Any, now: Any) -> None:
        if now != began:
            if began is None:
                found.append(f"{what} was added by someone else since you began")
            else:
                found.append(f"{what} was changed by someone else since you began")

    if edit.plans:
        stored = load_plans(conn)
        for plan in edit.plans:
            compare(f"plan {plan.name!r}", edit.began[plan.name], stored.get(plan.name))
    if edit.terms:
        ids = {t.customer_id for t in edit.terms}
        stored_terms = {(t.customer_id, t.start): t for t in load_terms(conn, ids)}
        for term in edit.terms:
            key = (term.customer_id, term.start)
            what = f"the term of {term.customer_id!r} from {term.start.isoformat()}"
            compare(what, edit.began[key], stored_terms.get(key))
    if edit.users:
        stored_users = load_users(conn)
        for user_id in edit.users:
            began_owner = edit.began_users.get(user_id)
            now_owner = stored_users.get(user_id)
            if now_owner != began_owner:
                found.append(
                    f"user id {user_id!r} was "
                    + ("given to" if began_owner is None else "moved to")
                    + f" {now_owner!r} by someone else since you began"
                )
    if edit.revenue:
        stored_lines = load_revenue(conn)
        for rid in edit.revenue:
            compare(f"revenue {rid!r}", edit.began[rid], stored_lines.get(rid))
    return [Problem(None, None, message) for message in found]


def save_edit(
    conn: Connection,
    start: Start,
    state: Mapping[str, Any] | None,
    who: str,
    note: str | None = None,
) -> dict[str, Written]:
    """Check the edit against the store as it is in this transaction (under the accounts lock)
    and write its rows, an audit row each. Raises EditRefused, having written nothing, for a bad
    cell, a deleted row or a conflict; returns what was written per table ({} when nothing was
    changed)."""
    lock_accounts(conn)
    edit = read_edit(start, state, set(load_plans(conn)), customer_ids(conn))
    if edit.problems:
        raise EditRefused(edit.problems)
    if edit.empty:
        return {}
    found = conflicts(conn, edit)
    if found:
        raise EditRefused(found, conflict=True)
    written: dict[str, Written] = {}
    if start.kind == "plans":
        written["plans"] = write_plans(conn, edit.plans, who, note)
    elif start.kind == "customers":
        if edit.terms:
            written["customers"] = write_terms(conn, edit.terms, who, note)
        if edit.users:
            written["customer_users"] = write_users(conn, edit.users, who, note)
    else:
        written["revenue"] = write_revenue(conn, edit.revenue, who, note)
    return written


def written_text(written: Mapping[str, Written]) -> str:
    """'plans: 1 added, 2 changed' per table written."""
    return "; ".join(
        f"{TABLE_NAMES.get(table, table)}: {w.added} added, {w.changed} changed"
        for table, w in written.items()
    )


# --- an import's rows, for its preview ----------------------------------------------------------


def preview_frame(conn: Connection, preview: Preview) -> pd.DataFrame:
    """The rows a previewed import would write, each with what it would do to the store: add,
    change or nothing (the same as stored)."""
    if preview.kind == "plans":
        stored = load_plans(conn)
        frame = plans_frame(preview.plans)
        done = [_status(stored.get(p.name), p) for p in preview.plans]
    elif preview.kind == "customers":
        ids = {t.customer_id for t in preview.terms}
        stored_terms = {(t.customer_id, t.start): t for t in load_terms(conn, ids)}
        frame = terms_frame(preview.terms, preview.users)
        done = [_status(stored_terms.get((t.customer_id, t.start)), t) for t in preview.terms]
    else:
        stored_lines = load_revenue(conn)
        frame = revenue_frame(preview.revenue)
        done = [_status(stored_lines.get(rid), x) for rid, x in preview.revenue.items()]
    frame.insert(0, "import", done)
    return frame


def _status(stored: Any, row: Any) -> str:
    return "add" if stored is None else "same" if stored == row else "change"
