"""CSV imports of plans, customers (their subscription terms and user ids) and revenue. Plain
functions, no Streamlit.

``preview_import`` reads a CSV's text with a column mapping (which CSV column is which field;
by default the columns named like the fields, or a preset such as Stripe's subscriptions
export), checks every row and says what an import would add and change, writing nothing.
Every bad row is listed with its line number (the header is line 1) and each reason. While
any row is bad ``import_csv`` writes nothing; otherwise it upserts the rows, with an audit row
each (dashboard.accounts), in the caller's transaction, and says how many it added and changed.

Cells are text and stay text: nothing is evaluated, so ``=HYPERLINK(...)`` is stored as those
characters (whoever writes them into a spreadsheet again must escape them).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import Connection

from dashboard.accounts import (
    KEY_LENGTH,
    AccountError,
    Written,
    currency_problem,
    customer_ids,
    discount_problem,
    load_plans,
    load_users,
    money_problem,
    revenue_id,
    write_plans,
    write_revenue,
    write_terms,
    write_users,
)
from dashboard.economics import Plan, RevenueLine, Term
from tracking.events import unstorable
from tracking.sqltypes import NANO

KINDS = ("plans", "customers", "revenue")
MAX_TEXT = 100_000  # a cell longer than this is not a name or a note
# Stripe's subscription statuses (https://docs.stripe.com/api/subscriptions/object#status):
# the ones after which the subscription no longer runs, and the rest.
ENDED_STATUSES = frozenset({"canceled", "cancelled", "incomplete_expired", "ended"})
RUNNING_STATUSES = frozenset({"active", "trialing", "past_due", "unpaid", "incomplete", "paused"})


@dataclass(frozen=True)
class Field:
    """One field an import fills: ``name`` (what a mapping names), whether every row needs
    it, the column names it is found under by default, and what it means."""

    name: str
    required: bool = False
    aliases: tuple[str, ...] = ()
    help: str = ""


FIELDS: dict[str, tuple[Field, ...]] = {
    "plans": (
        Field("name", True, ("plan", "plan_name"), "the plan's name, as customers name it"),
        Field("price", True, ("amount", "price_usd"), "dollars per seat and period"),
        Field("period", False, ("interval", "billing_period"), "month (default) or year"),
        Field("currency", False, (), "USD only (blank: USD)"),
        Field("included_usage", False, ("included", "included_usd"), "AI cost a month includes"),
        Field("active_from", False, ("from",), "offered from this day (YYYY-MM-DD)"),
        Field("active_to", False, ("to", "retired"), "offered until this day"),
    ),
    "customers": (
        Field("customer_id", True, ("customer", "id"), "the customer's id"),
        Field("start", True, ("start_date", "signup", "from"), "the term's first day"),
        Field("name", False, ("customer_name", "company"), "blank: the customer id"),
        Field("plan", False, ("plan_name",), "a stored plan's name"),
        Field("end", False, ("end_date", "churn", "churned", "to"), "the last day; blank: running"),
        Field("status", False, (), "a subscription status: an ended one ends the term"),
        Field("seats", False, ("quantity",), "a whole number of 1 or more (blank: 1)"),
        Field("discount_pct", False, ("discount", "discount_percent"), "0-100 off the price"),
        Field("custom_price", False, ("custom",), "dollars a month replacing the plan's price"),
        Field("amount", False, ("price",), "dollars per seat and interval actually charged"),
        Field("interval", False, ("period",), "month or year: the amount's"),
        Field("currency", False, (), "USD only (blank: USD)"),
        Field("users", False, ("user_ids", "user_id"), "user ids, separated by ; or spaces"),
    ),
    "revenue": (
        Field("id", False, ("revenue_id", "invoice", "invoice_id"), "blank: made from the row"),
        Field("customer_id", True, ("customer",), "a stored customer's id"),
        Field("start", True, ("period_start", "from"), "the first day it pays for"),
        Field("end", True, ("period_end", "to"), "the last day it pays for"),
        Field("amount", True, ("revenue", "amount_usd"), "dollars"),
        Field("note", False, ("description", "memo"), ""),
        Field("currency", False, (), "USD only (blank: USD)"),
    ),
}

# field -> the CSV columns it is read from, first present first (a cell left blank in the
# first falls back to the next: Stripe leaves "Customer Name" empty for many customers).
ColumnMap = Mapping[str, str | Sequence[str]]


@dataclass(frozen=True)
class Preset:
    name: str
    kind: str
    label: str
    columns: Mapping[str, tuple[str, ...]]
    note: str = ""


# The column names of the Stripe Dashboard's subscriptions export (Billing > Subscriptions >
# Export), as scripts reading that export name them: "id", "Customer ID", "Customer Name",
# "Customer Email", "Status", "Created (UTC)", "Start (UTC)" or "Start Date (UTC)", "Current
# Period Start (UTC)", "Current Period End (UTC)", "Canceled At (UTC)", "Ended At (UTC)",
# "Amount", "Interval". "Plan", "Quantity" and "Currency" are the names the brief gave: no
# public export seen here showed them, so check them against a real export (the mapping can
# name any column instead).
STRIPE_SUBSCRIPTIONS = Preset(
    name="stripe_subscriptions",
    kind="customers",
    label="Stripe: subscriptions export",
    columns={
        "customer_id": ("Customer ID",),
        "name": ("Customer Name", "Customer Email", "Customer Description"),
        "plan": ("Plan", "Plan Nickname", "Price Nickname", "Plan Name", "Product"),
        "status": ("Status",),
        # a term starts when the subscription did; the current period only when that is all
        "start": ("Start (UTC)", "Start Date (UTC)", "Created (UTC)", "Current Period Start (UTC)"),
        # read only for an ended subscription (status canceled, incomplete_expired)
        "end": ("Ended At (UTC)", "Current Period End (UTC)", "Canceled At (UTC)"),
        "seats": ("Quantity",),
        "amount": ("Amount",),
        "interval": ("Interval",),
        "currency": ("Currency",),
        "users": ("users (metadata)", "user_ids (metadata)", "user_id (metadata)"),
    },
    note=(
        "Amount is taken as dollars per seat and interval (as the Dashboard shows it, not"
        " cents); where it differs from the plan's price the term gets a custom price"
        " (amount x seats a month). User ids come from a users/user_ids metadata column."
    ),
)
PRESETS: dict[str, Preset] = {p.name: p for p in (STRIPE_SUBSCRIPTIONS,)}


@dataclass(frozen=True)
class BadRow:
    """A row that cannot be imported: its line in the CSV (the header is line 1) and why."""

    line: int
    reasons: tuple[str, ...]

    def __str__(self) -> str:
        return f"Line {self.line}: {'; '.join(self.reasons)}"


@dataclass
class Preview:
    """What importing this CSV would do. ``problems`` are the file's own (a mapping naming a
    column the CSV lacks, no header); ``bad`` the rows that cannot be imported."""

    kind: str
    columns: dict[str, tuple[str, ...]] = field(default_factory=dict)  # field -> CSV columns
    rows: int = 0  # data rows read (blank lines not counted)
    problems: list[str] = field(default_factory=list)
    bad: list[BadRow] = field(default_factory=list)
    plans: list[Plan] = field(default_factory=list)
    terms: list[Term] = field(default_factory=list)
    users: dict[str, str] = field(default_factory=dict)
    revenue: dict[str, RevenueLine] = field(default_factory=dict)
    would: dict[str, Written] = field(default_factory=dict)  # table -> what a write would do

    @property
    def ok(self) -> bool:
        return not self.problems and not self.bad

    def messages(self) -> list[str]:
        return [*self.problems, *(str(b) for b in self.bad)]

    def summary(self) -> str:
        if not self.ok:
            count = len(self.bad)
            rows = f"{count} bad row{'s' * (count != 1)}"
            parts = [*self.problems[:1], rows] if self.problems else [rows]
            return f"Nothing can be imported yet: {', '.join(parts)} (of {self.rows})."
        return f"{self.rows} rows: " + "; ".join(
            f"{table.replace('_', ' ')}: {w.added} to add, {w.changed} to change"
            for table, w in self.would.items()
        )


@dataclass(frozen=True)
class ImportResult:
    preview: Preview
    written: dict[str, Written]  # table -> what was written; empty when nothing was

    @property
    def added(self) -> int:
        return sum(w.added for w in self.written.values())

    @property
    def changed(self) -> int:
        return sum(w.changed for w in self.written.values())

    @property
    def message(self) -> str:
        if not self.written:
            return "Nothing written: " + self.preview.summary()
        return "Imported " + "; ".join(
            f"{table.replace('_', ' ')}: {w.added} added, {w.changed} changed"
            + (f" ({w.unchanged} unchanged)" if w.unchanged else "")
            for table, w in self.written.items()
        )


# --- reading the CSV ---------------------------------------------------------------------------


def _normal(name: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", name.strip().lower()).strip("_")


def read_csv(text: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header and the data rows, each with the line it starts on (the header is line 1).
    A byte-order mark is dropped; blank lines are skipped; cells stay exactly as written."""
    text = text.removeprefix("\ufeff")
    first = text.split("\n", 1)[0]
    delimiter = ","  # a header without commas may be tab- or semicolon-separated (Excel's)
    if "," not in first:
        delimiter = "\t" if "\t" in first else ";" if ";" in first else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=False)
    header: list[str] | None = None
    rows: list[tuple[int, list[str]]] = []
    while True:
        line = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        if not any(c.strip() for c in cells):
            continue
        if header is None:
            header = [c.strip() for c in cells]
        else:
            rows.append((line, cells))
    return header or [], rows


def header_of(text: str) -> list[str]:
    """The CSV's column names (for a mapping's choices)."""
    return read_csv(text)[0]


def default_columns(
    kind: str, header: Sequence[str], preset: str | None = None
) -> dict[str, tuple[str, ...]]:
    """Which columns each field would be read from: the preset's that the header has, else
    the column named like the field or one of its aliases (case, spaces and punctuation
    aside)."""
    if preset is not None:
        chosen = PRESETS[preset]
        present = set(header)
        return {
            name: present_ones
            for name, names in chosen.columns.items()
            if (present_ones := tuple(c for c in names if c in present))
        }
    by_name = {_normal(c): c for c in reversed(header)}
    found: dict[str, tuple[str, ...]] = {}
    taken: set[str] = set()
    for f in FIELDS[kind]:
        for candidate in (f.name, *f.aliases):
            column = by_name.get(_normal(candidate))
            if column is not None and column not in taken:
                found[f.name] = (column,)
                taken.add(column)
                break
    return found


def resolve_columns(
    kind: str, header: Sequence[str], mapping: ColumnMap | None, preset: str | None
) -> tuple[dict[str, tuple[str, ...]], list[str]]:
    """The columns of each field (a mapping's choices over the defaults) and the problems."""
    problems: list[str] = []
    if kind not in FIELDS:
        return {}, [f"unknown import {kind!r}: one of {', '.join(KINDS)}"]
    if preset is not None and preset not in PRESETS:
        return {}, [f"unknown preset {preset!r}: one of {', '.join(PRESETS)}"]
    if preset is not None and PRESETS[preset].kind != kind:
        return {}, [f"the preset {PRESETS[preset].label!r} imports {PRESETS[preset].kind}"]
    columns = default_columns(kind, header, preset)
    names = {f.name for f in FIELDS[kind]}
    for name, chosen in (mapping or {}).items():
        if name not in names:
            problems.append(
                f"the mapping names an unknown field {name!r} ({kind} have: "
                f"{', '.join(sorted(names))})"
            )
            continue
        wanted = (chosen,) if isinstance(chosen, str) else tuple(chosen)
        wanted = tuple(c for c in wanted if c)
        missing = [c for c in wanted if c not in header]
        if missing:
            problems.append(f"the CSV has no column {missing[0]!r} (mapped to {name})")
        if wanted:
            columns[name] = wanted
        else:
            columns.pop(name, None)  # mapped to nothing: not imported
    for f in FIELDS[kind]:
        if f.required and f.name not in columns:
            problems.append(f"no column for the required field {f.name} (map one)")
    return columns, problems


# --- cells --------------------------------------------------------------------------------------


class _Bad(Exception):
    pass


def _cell(cells: Mapping[str, str], name: str) -> str:
    return cells.get(name, "").strip()


def parse_amount(text: str, what: str) -> Decimal:
    """Dollars: "49", "49.00", "$1,299.50"; never through a float."""
    raw = text.strip()
    cleaned = raw.removeprefix("$").strip()
    if cleaned.startswith("-$"):
        cleaned = "-" + cleaned[2:]
    if re.fullmatch(r"-?\d{1,3}(,\d{3})+(\.\d+)?", cleaned):
        cleaned = cleaned.replace(",", "")
    if not re.fullmatch(r"-?(\d+(\.\d*)?|\.\d+)", cleaned):
        raise _Bad(f"malformed amount in {what}: {raw!r} (write dollars, e.g. 49.00)")
    amount = Decimal(cleaned)
    if amount < 0:
        raise _Bad(f"negative amount in {what}: {raw!r} (amounts are 0 or more)")
    problem = money_problem(amount, what)
    if problem:
        raise _Bad(problem)
    return amount


_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
_MOMENT = re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:?\d{2})?")


def parse_day(text: str, what: str) -> date:
    """A day: YYYY-MM-DD, or a UTC timestamp (Stripe's "2026-01-15 10:23:45", ISO 8601) of it."""
    raw = text.strip()
    try:
        if _DAY.fullmatch(raw):
            return date.fromisoformat(raw)
        if _MOMENT.fullmatch(raw):
            moment = datetime.fromisoformat(raw)
            return (moment.astimezone(UTC) if moment.tzinfo else moment).date()
    except ValueError:
        pass
    raise _Bad(f"malformed date in {what}: {raw!r} (write YYYY-MM-DD)")


def parse_seats(text: str) -> int:
    raw = text.strip()
    try:
        number = Decimal(raw.replace(",", ""))
    except InvalidOperation:
        number = Decimal("NaN")
    if not number.is_finite() or number != number.to_integral_value() or number < 1:
        raise _Bad(f"seats not a whole number of 1 or more: {raw!r}")
    return int(number)


def parse_discount(text: str) -> Decimal:
    raw = text.strip()
    try:
        number = Decimal(raw.removesuffix("%").strip())
    except InvalidOperation:
        raise _Bad(f"discount not a percentage: {raw!r} (write 0-100, e.g. 15)") from None
    problem = discount_problem(number)
    if problem:
        raise _Bad(f"discount outside 0-100: {raw!r}" if number.is_finite() else problem)
    return number


def parse_users(text: str) -> list[str]:
    """User ids separated by semicolons or spaces, in order, each once."""
    return list(dict.fromkeys(u for u in re.split(r"[;\s]+", text.strip()) if u))


def _key(cells: Mapping[str, str], name: str, what: str, required: bool = True) -> str:
    value = _cell(cells, name)
    if not value:
        if required:
            raise _Bad(f"missing required field {name}")
        return ""
    if len(value) > KEY_LENGTH:
        raise _Bad(f"{what} is longer than {KEY_LENGTH} characters")
    if why := unstorable(value):
        raise _Bad(f"{what} {why}")
    return value


# --- rows ---------------------------------------------------------------------------------------


@dataclass
class _Context:
    """What rows are checked against: the store's plans, customers and user ids."""

    plans: Mapping[str, Plan]
    customers: set[str]
    users: Mapping[str, str]


def _collect(row: Mapping[str, str], steps: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Run each field's parser; every failure is a reason, the rest are values."""
    values: dict[str, Any] = {}
    reasons: list[str] = []
    for name, step in steps.items():
        try:
            values[name] = step(row)
        except _Bad as bad:
            reasons.append(str(bad))
    return values, reasons


def _field(name: str, parse: Any, *args: Any, default: Any = None, required: bool = False) -> Any:
    """A step reading one cell: ``parse(cell, *args)``, or the default for a blank cell (a
    reason when the field is required)."""

    def step(row: Mapping[str, str]) -> Any:
        value = _cell(row, name)
        if not value:
            if required:
                raise _Bad(f"missing required field {name}")
            return default
        return parse(value, *args)

    return step


def _currency(row: Mapping[str, str]) -> None:
    if currency_problem(_cell(row, "currency")):
        raise _Bad(
            f"currency not USD: {_cell(row, 'currency')!r} (Unitwise keeps every amount in US"
            " dollars: convert it first)"
        )


def _text(row: Mapping[str, str], name: str) -> str:
    value = _cell(row, name)
    if why := unstorable(value):
        raise _Bad(f"{name} {why}")
    if len(value) > MAX_TEXT:
        raise _Bad(f"{name} is longer than {MAX_TEXT:,} characters")
    return value


def _plan_row(row: Mapping[str, str], ctx: _Context) -> tuple[Plan | None, list[str]]:
    def period(r: Mapping[str, str]) -> str:
        value = _cell(r, "period").lower() or "month"
        value = {"monthly": "month", "yearly": "year", "annual": "year"}.get(value, value)
        if value not in ("month", "year"):
            raise _Bad(f"period not month or year: {_cell(r, 'period')!r}")
        return value

    values, reasons = _collect(
        row,
        {
            "name": lambda r: _key(r, "name", "a plan's name"),
            "price": _field("price", parse_amount, "price", required=True),
            "period": period,
            "currency": _currency,
            "included_usage": _field("included_usage", parse_amount, "included_usage"),
            "active_from": _field("active_from", parse_day, "active_from"),
            "active_to": _field("active_to", parse_day, "active_to"),
        },
    )
    frm, to = values.get("active_from"), values.get("active_to")
    if frm and to and to < frm:
        reasons.append(f"active_to {to} is before active_from {frm}")
    if reasons:
        return None, reasons
    values.pop("currency")
    return Plan(**values), []


def _term_row(
    row: Mapping[str, str], ctx: _Context
) -> tuple[tuple[Term, list[str]] | None, list[str]]:
    def plan(r: Mapping[str, str]) -> str | None:
        name = _cell(r, "plan")
        if name and name not in ctx.plans:
            raise _Bad(f"unknown plan {name!r} (not in the plans: import or add it first)")
        return name or None

    def status(r: Mapping[str, str]) -> str | None:
        value = _cell(r, "status").lower()
        if value and value not in ENDED_STATUSES | RUNNING_STATUSES:
            raise _Bad(f"unknown status {_cell(r, 'status')!r} (a subscription status)")
        return value or None

    def interval(r: Mapping[str, str]) -> str | None:
        value = _cell(r, "interval").lower()
        value = {"monthly": "month", "yearly": "year", "annual": "year"}.get(value, value)
        if value and value not in ("month", "year"):
            raise _Bad(f"interval not month or year: {_cell(r, 'interval')!r}")
        return value or None

    def users(r: Mapping[str, str]) -> list[str]:
        found = parse_users(_cell(r, "users"))
        long = [u for u in found if len(u) > KEY_LENGTH]
        if long:
            raise _Bad(f"a user id is longer than {KEY_LENGTH} characters: {long[0][:40]!r}...")
        return found

    values, reasons = _collect(
        row,
        {
            "customer_id": lambda r: _key(r, "customer_id", "a customer id"),
            "start": _field("start", parse_day, "start", required=True),
            "name": lambda r: _text(r, "name"),
            "plan": plan,
            "end": _field("end", parse_day, "end"),
            "status": status,
            "seats": _field("seats", parse_seats, default=1),
            "discount_pct": _field("discount_pct", parse_discount, default=Decimal(0)),
            "custom_price": _field("custom_price", parse_amount, "custom_price"),
            "amount": _field("amount", parse_amount, "amount"),
            "interval": interval,
            "currency": _currency,
            "users": users,
        },
    )
    if reasons:
        return None, reasons
    end = values["end"]
    if values["status"] is not None:
        if values["status"] in RUNNING_STATUSES:
            end = None  # a running subscription's period end is not the term's end
        elif end is None:
            reasons.append(f"status {values['status']} needs the day it ended (end)")
    if end is not None and end < values["start"]:
        reasons.append(f"end {end} is before start {values['start']}")
    custom = values["custom_price"]
    if custom is None and values["amount"] is not None:
        custom = _custom_price(
            values["amount"], values["interval"], values["seats"], ctx.plans.get(values["plan"])
        )
    if values["plan"] is None and custom is None:
        reasons.append("missing required field plan (or a custom price)")
    if reasons:
        return None, reasons
    term = Term(
        customer_id=values["customer_id"],
        name=values["name"] or values["customer_id"],
        plan=values["plan"],
        start=values["start"],
        end=end,
        seats=values["seats"],
        discount_pct=values["discount_pct"],
        custom_price=custom,
    )
    return (term, values["users"]), []


def _custom_price(
    amount: Decimal, interval: str | None, seats: int, plan: Plan | None
) -> Decimal | None:
    """What a charged amount (per seat and interval) makes of the term: nothing when it is the
    plan's price, else its monthly total for all seats, to the nano-dollar."""
    monthly = amount if (interval or (plan.period if plan else "month")) == "month" else amount / 12
    if plan is not None and monthly == plan.monthly_price:
        return None
    return (monthly * seats).quantize(NANO)


def _revenue_row(
    row: Mapping[str, str], ctx: _Context
) -> tuple[tuple[str, RevenueLine] | None, list[str]]:
    def customer(r: Mapping[str, str]) -> str:
        value = _key(r, "customer_id", "a customer id")
        if value not in ctx.customers:
            raise _Bad(f"unknown customer {value!r} (not in the customers: import them first)")
        return value

    values, reasons = _collect(
        row,
        {
            "id": lambda r: _key(r, "id", "a revenue id", required=False),
            "customer_id": customer,
            "start": _field("start", parse_day, "start", required=True),
            "end": _field("end", parse_day, "end", required=True),
            "amount": _field("amount", parse_amount, "amount", required=True),
            "note": lambda r: _text(r, "note"),
            "currency": _currency,
        },
    )
    if not reasons and values["end"] < values["start"]:
        reasons.append(f"end {values['end']} is before start {values['start']}")
    if reasons:
        return None, reasons
    line = RevenueLine(
        customer_id=values["customer_id"],
        start=values["start"],
        end=values["end"],
        amount=values["amount"],
        note=values["note"] or None,
    )
    return (values["id"] or revenue_id(line), line), []


# --- the preview and the import -----------------------------------------------------------------


def preview_import(
    conn: Connection,
    kind: str,
    text: str,
    mapping: ColumnMap | None = None,
    preset: str | None = None,
) -> Preview:
    """Check every row of the CSV against the store; write nothing."""
    header, rows = read_csv(text)
    preview = Preview(kind=kind, rows=len(rows))
    if not header:
        preview.problems.append("the CSV is empty: a header row is needed")
        return preview
    columns, problems = resolve_columns(kind, header, mapping, preset)
    preview.columns, preview.problems = columns, problems
    if problems:
        return preview
    if not rows:  # not "0 rows read, none bad" with an Import button that imports nothing
        preview.problems.append("the CSV has a header row and no data rows: nothing to import")
        return preview
    index = {c: i for i, c in reversed(list(enumerate(header)))}
    ctx = _Context(load_plans(conn), customer_ids(conn), load_users(conn))
    seen: dict[Any, int] = {}  # key -> the line that has it first
    claimed: dict[str, tuple[str, int]] = {}  # user id -> (customer, line) in this CSV
    pending_users: list[tuple[int, str, list[str]]] = []
    for line, cells in rows:
        if len(cells) > len(header):
            extra = cells[len(header) :]
            if any(c.strip() for c in extra):
                preview.bad.append(
                    BadRow(line, (f"{len(cells)} cells, but the header has {len(header)}",))
                )
                continue
        row = {
            name: next(
                (
                    cells[index[c]]
                    for c in cols
                    if index[c] < len(cells) and cells[index[c]].strip()
                ),
                "",
            )
            for name, cols in columns.items()
        }
        reasons: list[str]
        if kind == "plans":
            plan, reasons = _plan_row(row, ctx)
            if plan is not None:
                reasons = _duplicate(seen, plan.name, line, f"plan {plan.name!r}")
                if not reasons:
                    preview.plans.append(plan)
        elif kind == "customers":
            found, reasons = _term_row(row, ctx)
            if found is not None:
                term, users = found
                what = f"customer {term.customer_id!r} from {term.start}"
                reasons = _duplicate(seen, (term.customer_id, term.start), line, what)
            # the user ids a row claims count even when the row is bad otherwise
            owner_id = _cell(row, "customer_id")
            for user_id in parse_users(_cell(row, "users")) if owner_id else ():
                owner = claimed.setdefault(user_id, (owner_id, line))
                if owner[0] != owner_id:
                    reasons.append(
                        f"user id {user_id!r} claimed by two customers: {owner[0]!r}"
                        f" (line {owner[1]}) and {owner_id!r}"
                    )
            if found is not None and not reasons:
                preview.terms.append(term)
                pending_users.append((line, term.customer_id, users))
        else:
            entry, reasons = _revenue_row(row, ctx)
            if entry is not None:
                rid, revenue_line = entry
                reasons = _duplicate(seen, rid, line, f"revenue {rid!r}")
                if not reasons:
                    preview.revenue[rid] = revenue_line
        if reasons:
            preview.bad.append(BadRow(line, tuple(reasons)))
    if kind == "customers":
        _check_users_against_the_store(preview, ctx, pending_users)
    preview.bad.sort(key=lambda b: b.line)
    if preview.ok:
        _count(conn, preview, ctx)
    return preview


def _duplicate(seen: dict[Any, int], key: Any, line: int, what: str) -> list[str]:
    if key in seen:
        return [f"duplicate id: {what} is on line {seen[key]} too"]
    seen[key] = line
    return []


def _check_users_against_the_store(
    preview: Preview, ctx: _Context, pending: list[tuple[int, str, list[str]]]
) -> None:
    """A user id the store gives a customer this CSV does not import stays theirs: listing it
    under another customer is a claim by two customers. (Importing both customers moves it.)"""
    in_csv = {t.customer_id for t in preview.terms}
    bad: dict[int, list[str]] = {}
    for line, customer_id, users in pending:
        for user_id in users:
            owner = ctx.users.get(user_id)
            if owner is not None and owner != customer_id and owner not in in_csv:
                bad.setdefault(line, []).append(
                    f"user id {user_id!r} claimed by two customers: {owner!r} (stored) and"
                    f" {customer_id!r} (import {owner!r} too to move it)"
                )
            else:
                preview.users[user_id] = customer_id
    for line, reasons in bad.items():
        preview.bad.append(BadRow(line, tuple(reasons)))


def _count(conn: Connection, preview: Preview, ctx: _Context) -> None:
    """What a write would do, table by table (a dry run of the same upserts)."""
    try:
        if preview.kind == "plans":
            preview.would["plans"] = write_plans(conn, preview.plans, "", dry_run=True)
        elif preview.kind == "customers":
            also = {t.customer_id for t in preview.terms}
            preview.would["customers"] = write_terms(conn, preview.terms, "", dry_run=True)
            preview.would["customer_users"] = write_users(
                conn, preview.users, "", dry_run=True, also_customers=also
            )
        else:
            preview.would["revenue"] = write_revenue(conn, preview.revenue, "", dry_run=True)
    except AccountError as refused:  # a check the rows above do not make: say so, write nothing
        preview.problems += refused.problems


def import_csv(
    conn: Connection,
    kind: str,
    text: str,
    who: str,
    mapping: ColumnMap | None = None,
    preset: str | None = None,
    note: str | None = None,
) -> ImportResult:
    """Preview the CSV against the store as it is in this transaction and, when no row is bad,
    upsert every row (an audit row each). Nothing is written while any row is bad."""
    preview = preview_import(conn, kind, text, mapping, preset)
    if not preview.ok:
        return ImportResult(preview, {})
    written: dict[str, Written] = {}
    if kind == "plans":
        written["plans"] = write_plans(conn, preview.plans, who, note)
    elif kind == "customers":
        written["customers"] = write_terms(conn, preview.terms, who, note)
        written["customer_users"] = write_users(conn, preview.users, who, note)
    else:
        written["revenue"] = write_revenue(conn, preview.revenue, who, note)
    return ImportResult(preview, written)


def field_help(kind: str) -> list[tuple[str, bool, str]]:
    """(field, required, meaning) of an import, for a mapping's labels."""
    return [(f.name, f.required, f.help) for f in FIELDS[kind]]
