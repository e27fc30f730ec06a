"""The accounts behind Users & margins: plans, customers' subscription terms, which user ids are
whose, and revenue. Plain functions, no Streamlit.

``load_*`` read the store's rows as economics' shapes (Plan, Term, RevenueLine), money as exact
Decimals. ``write_*`` upsert them in the caller's transaction: a row not stored yet is added, a
stored row that differs is changed, an equal one is left alone, and each added or changed row
writes one audit_log row (``before``/``after`` as JSON, money as decimal strings) in the same
transaction. They return how many rows were added and changed; ``dry_run`` counts without
writing (an import's preview). Every row is checked first: one bad row raises AccountError
naming them all, and nothing is written. Money is US dollars only.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Table, insert, select, update
from sqlalchemy.sql.elements import ColumnElement

from dashboard.economics import Plan, RevenueLine, Term
from tracking.audit import record_change
from tracking.events import unstorable
from tracking.schema import customer_users, customers, plans, revenue
from tracking.sqltypes import NANO, plain_decimal
from tracking.write_lock import take_write_lock

CURRENCY = "USD"  # the one currency the store keeps
PERIODS = ("month", "year")
KEY_LENGTH = 200  # ids, names of plans and user ids: String(200) columns
ACCOUNTS_LOCK = 7_401_020  # the advisory lock every accounts write takes on PostgreSQL
MAX_MONEY = Decimal(10) ** 9  # a billion dollars: within both NUMERIC(20, 9) and int64 nanos
_CHUNK = 500  # keys per IN (...) when reading the stored rows


class AccountError(ValueError):
    """Rows that cannot be stored, each named with what is wrong with it."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


@dataclass(frozen=True)
class Written:
    """What an upsert did (or, with ``dry_run``, would do) to one table."""

    added: int = 0
    changed: int = 0
    unchanged: int = 0

    def __add__(self, other: Written) -> Written:
        return Written(
            self.added + other.added,
            self.changed + other.changed,
            self.unchanged + other.unchanged,
        )

    def __str__(self) -> str:
        return f"{self.added} added, {self.changed} changed, {self.unchanged} unchanged"


@dataclass(frozen=True)
class Accounts:
    """Everything margins need from the store besides the calls."""

    plans: dict[str, Plan] = field(default_factory=dict)  # name -> plan
    terms: list[Term] = field(default_factory=list)  # by customer, then start
    users: dict[str, str] = field(default_factory=dict)  # user id -> customer id
    revenue: dict[str, RevenueLine] = field(default_factory=dict)  # revenue id -> line


# --- reading ------------------------------------------------------------------------------------


def load_plans(conn: Connection) -> dict[str, Plan]:
    """Every plan by name (in name order)."""
    return {
        r.name: Plan(
            name=r.name,
            price=r.price,
            period=r.period,
            included_usage=r.included_usage,
            active_from=r.active_from,
            active_to=r.active_to,
        )
        for r in conn.execute(select(plans).order_by(plans.c.name))
    }


def load_terms(conn: Connection, customer_ids: Iterable[str] | None = None) -> list[Term]:
    """Every subscription term (of the given customers only, when given), by customer and
    start."""
    query = select(*_TERM_COLUMNS).order_by(customers.c.customer_id, customers.c.start)
    wanted = None if customer_ids is None else sorted(set(customer_ids))
    if wanted is None:  # the rows as plain tuples, in Term's order: 25,000 terms in ~60 ms
        return [Term(*r) for r in conn.execute(query)]
    found: list[Term] = []
    for chunk in _chunks(wanted):
        chosen = query.where(customers.c.customer_id.in_(chunk))
        found += [Term(*r) for r in conn.execute(chosen)]
    return sorted(found, key=lambda t: (t.customer_id, t.start))


_TERM_COLUMNS = [customers.c[f.name] for f in fields(Term)]


def load_users(conn: Connection) -> dict[str, str]:
    """user id -> the customer it belongs to (in user id order)."""
    c = customer_users.c
    query = select(c.user_id, c.customer_id).order_by(c.user_id)
    return {user_id: customer_id for user_id, customer_id in conn.execute(query)}


def load_revenue(conn: Connection) -> dict[str, RevenueLine]:
    """revenue id -> line, by start, customer and id. Margins take the values."""
    r = revenue.c
    query = select(revenue).order_by(r.period_start, r.customer_id, r.id)
    return {
        row.id: RevenueLine(
            customer_id=row.customer_id,
            start=row.period_start,
            end=row.period_end,
            amount=row.amount,
            note=row.note,
        )
        for row in conn.execute(query)
    }


def load_accounts(conn: Connection) -> Accounts:
    return Accounts(load_plans(conn), load_terms(conn), load_users(conn), load_revenue(conn))


def customer_ids(conn: Connection) -> set[str]:
    """The customers with at least one term."""
    return set(conn.execute(select(customers.c.customer_id).distinct()).scalars())


def revenue_id(line: RevenueLine) -> str:
    """The id of a revenue line its source gave none: its customer, days and note, so that
    importing the same line again changes it rather than adding a second one."""
    made = f"{line.customer_id}:{line.start.isoformat()}:{line.end.isoformat()}"
    return f"{made}:{line.note}" if line.note else made


# --- checking -----------------------------------------------------------------------------------


def money_problem(amount: Any, what: str, optional: bool = False) -> str | None:
    """What is wrong with an amount of dollars, or None."""
    if amount is None:
        return None if optional else f"{what} is needed"
    if not isinstance(amount, Decimal) or not amount.is_finite():
        return f"{what} must be an exact amount of dollars, not {amount!r}"
    if amount < 0:
        return f"{what} is negative ({_shown(amount)}): amounts are 0 or more"
    if amount >= MAX_MONEY:  # first: quantizing 1e19 to the nano-dollar raises
        return f"{what} {_shown(amount)} is too large (under a billion dollars)"
    if amount != amount.quantize(NANO):
        return f"{what} {plain_decimal(amount)} is finer than a nano-dollar (9 decimal places)"
    return None


def _shown(amount: Decimal) -> str:
    """An amount as a message shows it: exact when short, else in powers of ten (1e309 is not
    worth 310 digits on the page)."""
    text = plain_decimal(amount)
    return text if len(text) <= 24 else f"{amount:.6g}"


def _key_problem(value: Any, what: str) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return f"{what} is needed"
    if value != value.strip():
        return f"{what} {value!r} has spaces around it"
    if len(value) > KEY_LENGTH:
        return f"{what} is longer than {KEY_LENGTH} characters"
    if why := unstorable(value):
        return f"{what} {why}"
    return None


def _text_problem(value: str | None, what: str) -> str | None:
    why = unstorable(value) if value else None
    return f"{what} {why}" if why else None


def _days_problem(start: date | None, end: date | None, what: str) -> str | None:
    if start is not None and end is not None and end < start:
        return f"{what} ends ({end.isoformat()}) before it starts ({start.isoformat()})"
    return None


def currency_problem(currency: str | None) -> str | None:
    """None for US dollars (blank means them too); otherwise why the amount is refused."""
    if currency is None or not currency.strip() or currency.strip().upper() == CURRENCY:
        return None
    return (
        f"currency {currency.strip()!r} is not USD: Unitwise keeps every amount in US dollars"
        " (convert it first)"
    )


def plan_problems(plan: Plan) -> list[str]:
    where = f"plan {plan.name!r}"
    found = [
        _key_problem(plan.name, "a plan's name"),
        money_problem(plan.price, f"{where}: price"),
        money_problem(plan.included_usage, f"{where}: included usage", optional=True),
        _days_problem(plan.active_from, plan.active_to, f"{where}: its offer"),
    ]
    if plan.period not in PERIODS:
        found.append(f"{where}: period {plan.period!r} is not month or year")
    return [p for p in found if p]


def seats_problem(seats: Any) -> str | None:
    if isinstance(seats, bool) or not isinstance(seats, int) or seats < 1:
        return f"seats {seats!r} is not a whole number of 1 or more"
    return None


def discount_problem(discount: Any) -> str | None:
    if not isinstance(discount, Decimal) or not discount.is_finite():
        return f"discount {discount!r} is not a percentage"
    if not 0 <= discount <= 100:
        return f"discount {plain_decimal(discount)} is outside 0-100 (a percentage)"
    if discount != discount.quantize(Decimal("0.000001")):
        return f"discount {plain_decimal(discount)} has more than 6 decimal places"
    return None


def term_problems(term: Term, known_plans: Iterable[str]) -> list[str]:
    where = f"customer {term.customer_id!r} from {term.start}"
    found = [
        _key_problem(term.customer_id, "a customer id"),
        _text_problem(term.name, f"{where}: name"),
        seats_problem(term.seats),
        discount_problem(term.discount_pct),
        money_problem(term.custom_price, f"{where}: custom price", optional=True),
        _days_problem(term.start, term.end, where),
    ]
    found = [p if p is None or p.startswith(where) else f"{where}: {p}" for p in found]
    if term.plan is not None and term.plan not in set(known_plans):
        found.append(f"{where}: unknown plan {term.plan!r} (add it to the plans first)")
    if term.plan is None and term.custom_price is None:
        found.append(f"{where}: a plan or a custom price is needed")
    return [p for p in found if p]


# --- writing ------------------------------------------------------------------------------------


def write_plans(
    conn: Connection,
    rows: Iterable[Plan],
    who: str,
    note: str | None = None,
    *,
    currency: str = CURRENCY,
    audit: bool = True,
    dry_run: bool = False,
) -> Written:
    """Upsert plans by name. ``currency`` is the plans' (USD: anything else is refused)."""
    given = list(rows)
    problems: list[str | None] = [currency_problem(currency)]
    problems += [p for plan in given for p in plan_problems(plan)]
    keyed = _unique(given, lambda p: p.name, "plan", problems)
    _refuse(problems)
    values = {name: _plan_values(p) for name, p in keyed.items()}
    return _upsert(conn, plans, ("name",), values, who, note, audit, dry_run)


def write_terms(
    conn: Connection,
    rows: Iterable[Term],
    who: str,
    note: str | None = None,
    *,
    audit: bool = True,
    dry_run: bool = False,
    also_plans: Iterable[str] = (),
) -> Written:
    """Upsert subscription terms by (customer id, start). Their plans must be stored already
    (or, for a dry run, be among ``also_plans``: written before them in the same import)."""
    given = list(rows)
    known = set(load_plans(conn)) | set(also_plans)
    problems: list[str | None] = [p for term in given for p in term_problems(term, known)]
    keyed = _unique(given, lambda t: (t.customer_id, t.start), "customer term", problems)
    _refuse(problems)
    values = {key: _term_values(t) for key, t in keyed.items()}
    return _upsert(conn, customers, ("customer_id", "start"), values, who, note, audit, dry_run)


def write_users(
    conn: Connection,
    users: Mapping[str, str],
    who: str,
    note: str | None = None,
    *,
    audit: bool = True,
    dry_run: bool = False,
    also_customers: Iterable[str] = (),
) -> Written:
    """Upsert which customer each user id belongs to (a user id moved to another customer is a
    change). The customers must have a term stored (or be among ``also_customers``)."""
    known = customer_ids(conn) | set(also_customers)
    problems: list[str | None] = []
    for user_id, customer_id in users.items():
        problems += [_key_problem(user_id, "a user id"), _key_problem(customer_id, "a customer id")]
        if customer_id not in known:
            problems.append(f"user {user_id!r}: unknown customer {customer_id!r}")
    _refuse(problems)
    values = {u: {"user_id": u, "customer_id": c} for u, c in users.items()}
    return _upsert(conn, customer_users, ("user_id",), values, who, note, audit, dry_run)


def write_revenue(
    conn: Connection,
    lines: Mapping[str, RevenueLine],
    who: str,
    note: str | None = None,
    *,
    currency: str = CURRENCY,
    audit: bool = True,
    dry_run: bool = False,
    also_customers: Iterable[str] = (),
) -> Written:
    """Upsert revenue lines by id (``revenue_id`` makes one for a line without). Their
    customers must have a term stored (or be among ``also_customers``)."""
    known = customer_ids(conn) | set(also_customers)
    problems: list[str | None] = [currency_problem(currency)]
    for rid, line in lines.items():
        where = f"revenue {rid!r}"
        problems += [
            _key_problem(rid, "a revenue id"),
            _key_problem(line.customer_id, f"{where}: customer id"),
            money_problem(line.amount, f"{where}: amount"),
            _days_problem(line.start, line.end, where),
            _text_problem(line.note, f"{where}: note"),
        ]
        if line.customer_id not in known:
            problems.append(f"{where}: unknown customer {line.customer_id!r}")
    _refuse(problems)
    values = {rid: _revenue_values(rid, line) for rid, line in lines.items()}
    return _upsert(conn, revenue, ("id",), values, who, note, audit, dry_run)


def write_accounts(
    conn: Connection, accounts: Accounts, who: str, note: str | None = None, *, audit: bool = True
) -> dict[str, Written]:
    """Plans, then terms, then users and revenue (each needs the ones before it)."""
    return {
        "plans": write_plans(conn, accounts.plans.values(), who, note, audit=audit),
        "customers": write_terms(conn, accounts.terms, who, note, audit=audit),
        "customer_users": write_users(conn, accounts.users, who, note, audit=audit),
        "revenue": write_revenue(conn, accounts.revenue, who, note, audit=audit),
    }


def _refuse(problems: Sequence[str | None]) -> None:
    found = [p for p in problems if p]
    if found:
        raise AccountError(found)


def _unique(rows: list[Any], key_of: Any, what: str, problems: list[str | None]) -> dict[Any, Any]:
    keyed: dict[Any, Any] = {}
    for row in rows:
        key = key_of(row)
        if key in keyed:
            shown = " from ".join(str(k) for k in key) if isinstance(key, tuple) else key
            problems.append(f"{what} {shown!r} is given twice")
        keyed[key] = row
    return keyed


def _plan_values(p: Plan) -> dict[str, Any]:
    return {
        "name": p.name,
        "price": p.price,
        "period": p.period,
        "currency": CURRENCY,
        "included_usage": p.included_usage,
        "active_from": p.active_from,
        "active_to": p.active_to,
    }


def _term_values(t: Term) -> dict[str, Any]:
    return {
        "customer_id": t.customer_id,
        "start": t.start,
        "name": t.name,
        "plan": t.plan,
        "end": t.end,
        "seats": t.seats,
        "discount_pct": t.discount_pct,
        "custom_price": t.custom_price,
    }


def _revenue_values(rid: str, line: RevenueLine) -> dict[str, Any]:
    return {
        "id": rid,
        "customer_id": line.customer_id,
        "period_start": line.start,
        "period_end": line.end,
        "amount": line.amount,
        "note": line.note,
    }


def _json(values: Mapping[str, Any]) -> dict[str, Any]:
    """A row for the audit log: money and percentages as exact decimal strings, days ISO."""

    def of(value: Any) -> Any:
        if isinstance(value, Decimal):
            return plain_decimal(value)
        if isinstance(value, date):
            return value.isoformat()
        return value

    return {name: of(value) for name, value in values.items()}


def lock_accounts(conn: Connection) -> None:
    """Serialise accounts writes: PostgreSQL's advisory lock for the transaction, SQLite's
    write lock (taken by a write that matches nothing), before anything is read."""
    take_write_lock(conn, ACCOUNTS_LOCK, plans, "name")


def _chunks(keys: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for lo in range(0, len(keys), _CHUNK):
        yield keys[lo : lo + _CHUNK]


def _stored(
    conn: Connection, table: Table, key_columns: tuple[str, ...], keys: list[Any]
) -> dict[Any, dict[str, Any]]:
    """The stored rows of these keys, as {key: {column: value}}."""
    first = table.c[key_columns[0]]
    heads = sorted({k[0] if len(key_columns) > 1 else k for k in keys})
    found: dict[Any, dict[str, Any]] = {}
    for chunk in _chunks(heads):
        where: ColumnElement[bool] = first.in_(chunk)
        for row in conn.execute(select(table).where(where)):
            values = dict(row._mapping)
            key = tuple(values[k] for k in key_columns)
            found[key if len(key_columns) > 1 else key[0]] = values
    return found


def _upsert(
    conn: Connection,
    table: Table,
    key_columns: tuple[str, ...],
    rows: Mapping[Any, dict[str, Any]],
    who: str,
    note: str | None,
    audit: bool,
    dry_run: bool,
) -> Written:
    if not rows:
        return Written()
    if not dry_run:
        lock_accounts(conn)
    stored = _stored(conn, table, key_columns, list(rows))
    new: list[dict[str, Any]] = []
    changed: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for key, values in rows.items():
        before = stored.get(key)
        if before is None:
            new.append(values)
        elif any(before[name] != value for name, value in values.items()):
            changed.append((before, values))
    result = Written(len(new), len(changed), len(rows) - len(new) - len(changed))
    if dry_run:
        return result
    if new:
        conn.execute(insert(table), new)
    for _before, values in changed:
        match = [table.c[k] == values[k] for k in key_columns]
        conn.execute(update(table).where(*match).values(values))
    if audit:
        for values in new:
            key = _audit_key(values, key_columns)
            record_change(conn, who, "add", table.name, key, None, _json(values), note)
        for before, values in changed:
            key = _audit_key(values, key_columns)
            record_change(conn, who, "edit", table.name, key, _json(before), _json(values), note)
    return result


def _audit_key(values: Mapping[str, Any], key_columns: tuple[str, ...]) -> str:
    """A plan's name, a user id, a revenue id; a term: "customer from YYYY-MM-DD"."""
    parts = [_json({k: values[k]})[k] for k in key_columns]
    return " from ".join(str(p) for p in parts)
