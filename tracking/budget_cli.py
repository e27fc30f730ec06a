"""``python -m tracking budgets add|list|remove``: budgets from the command line.

Every option is checked before the store is opened: a bad one exits 2 naming the option, and
nothing is written. Each add and remove writes the audit log in its own transaction.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy.exc import ArgumentError

from tracking.budget_periods import PERIOD_KINDS
from tracking.budget_store import (
    Budget,
    BudgetError,
    BudgetStatus,
    add_budget,
    check_limit,
    list_budgets,
    remove_budget,
    status,
    validate_budget,
)
from tracking.config import resolve_url
from tracking.db import describe_url, make_engine, normalize_url
from tracking.schema import DEFAULT_THRESHOLDS
from tracking.sqltypes import plain_decimal

# the option that sets each field of a Budget
OPTION = {
    "name": "--name",
    "limit_usd": "--limit",
    "period": "--period",
    "timezone": "--timezone",
    "user_id": "--user",
    "customer_id": "--customer",
    "feature": "--feature",
    "provider": "--provider",
    "model": "--model",
    "tag_key": "--tag",
    "tag_value": "--tag",
    "thresholds": "--thresholds",
}


def _refused(exc: BudgetError) -> ValueError:
    """A store's refusal, said in the command's terms: the option, not the column."""
    return ValueError(f"{OPTION.get(exc.field, exc.field)}: {exc.reason}")


def _url(text: str | None) -> str:
    url = resolve_url(text)
    try:
        normalize_url(url)
    except ArgumentError:
        raise ValueError(f"--url {url!r} is not a database URL") from None
    return url


def parse_tag(text: str) -> tuple[str, str]:
    """'team=growth' -> ('team', 'growth'); the key and the value must both be given."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip() or not value.strip():
        raise ValueError(f"--tag {text!r}: write KEY=VALUE, e.g. team=growth")
    return key.strip(), value.strip()


def parse_thresholds(text: str) -> tuple[int, ...]:
    """'50,80,100' (a '%' after a number is allowed) -> (50, 80, 100)."""
    parts = [p.strip().removesuffix("%").strip() for p in text.split(",")]
    try:
        return tuple(int(p) for p in parts)
    except ValueError:
        raise ValueError(
            f"--thresholds {text!r}: write whole percents separated by commas, e.g. 50,80,100"
        ) from None


def budget_of(args: argparse.Namespace) -> Budget:
    """The budget the options describe, checked in full (ValueError naming the option)."""
    tag_key = tag_value = None
    if args.tag:
        if len(args.tag) > 1:
            raise ValueError("--tag: a budget has one tag scope; give --tag once")
        tag_key, tag_value = parse_tag(args.tag[0])
    thresholds: tuple[int, ...] = DEFAULT_THRESHOLDS
    if args.thresholds is not None:
        thresholds = parse_thresholds(args.thresholds)
    try:
        return validate_budget(
            Budget(
                name=args.name,
                limit_usd=check_limit(args.limit),
                period=args.period,
                timezone=args.timezone,
                user_id=args.user,
                customer_id=args.customer,
                feature=args.feature,
                provider=args.provider,
                model=args.model,
                tag_key=tag_key,
                tag_value=tag_value,
                thresholds=thresholds,
                hard=args.hard,
                rollover=args.rollover,
            )
        )
    except BudgetError as exc:
        raise _refused(exc) from None


def _money(amount: Decimal) -> str:
    return f"${plain_decimal(amount)}"


def _per(period: str) -> str:
    return {"day": "a day", "week": "an ISO week (from Monday)", "month": "a calendar month"}[
        period
    ]


def add(args: argparse.Namespace) -> int:
    budget = budget_of(args)
    url = _url(args.url)
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            stored = add_budget(conn, budget, who=args.who)
    except BudgetError as exc:
        raise _refused(exc) from None
    finally:
        engine.dispose()
    kind = "hard" if stored.hard else "soft"
    extra = ", unspent budget rolls over" if stored.rollover else ""
    print(
        f"Added budget {stored.name!r} in {describe_url(url)}: {_money(stored.limit_usd)} "
        f"{_per(stored.period)} in {stored.timezone}, for {stored.describe_scope()}; {kind}, "
        f"alerts at {', '.join(f'{t}%' for t in stored.thresholds)}{extra}."
    )
    return 0


def _used(s: BudgetStatus) -> str:
    percent = s.percent_used
    if percent is None:
        return "0%" if s.spend.amount == 0 else "over"
    return f"{percent:.1f}%"


def rows_of(statuses: list[BudgetStatus]) -> list[list[str]]:
    """The table ``budgets list`` prints: a header, then one row per budget."""
    rows = [["name", "scope", "period", "limit", "spent", "used", "unknown cost", "kind"]]
    for s in statuses:
        b = s.budget
        limit = _money(s.limit)
        if s.limit != b.limit_usd:
            limit += f" ({_money(b.limit_usd)} + {_money(s.limit - b.limit_usd)} rolled over)"
        unpriced = s.spend.unpriced_calls
        rows.append(
            [
                b.name,
                b.describe_scope(),
                f"{s.spend.period.label} {b.timezone}",
                limit,
                _money(s.spend.amount),
                _used(s),
                f"plus {unpriced} call{'s' if unpriced != 1 else ''}" if unpriced else "-",
                ("hard" if b.hard else "soft") + (", rollover" if b.rollover else ""),
            ]
        )
    return rows


def list_(args: argparse.Namespace) -> int:
    url = _url(args.url)
    engine = make_engine(url)
    now = datetime.now(UTC)
    try:
        with engine.connect() as conn:
            statuses = [status(conn, b, now) for b in list_budgets(conn)]
    finally:
        engine.dispose()
    if not statuses:
        print(f"No budgets in {describe_url(url)}.")
        return 0
    rows = rows_of(statuses)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())
    if any(s.spend.unpriced_calls for s in statuses):
        print("Unknown cost: calls in the scope without a price, not included in spent.")
    return 0


def remove(args: argparse.Namespace) -> int:
    if not args.name.strip():
        raise ValueError("--name: give the name of the budget to remove")
    url = _url(args.url)
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            gone = remove_budget(conn, args.name, who=args.who)
    except BudgetError as exc:
        raise _refused(exc) from None
    finally:
        engine.dispose()
    print(
        f"Removed budget {gone.name!r} ({_money(gone.limit_usd)} {_per(gone.period)}, "
        f"for {gone.describe_scope()}) from {describe_url(url)}."
    )
    return 0


def register(sub: argparse._SubParsersAction, url_help: str) -> None:
    """The ``budgets`` command and its ``add``, ``list`` and ``remove``."""
    budgets = sub.add_parser("budgets", help="budgets: limits on spend per calendar period")
    cmds = budgets.add_subparsers(dest="budgets_command", required=True)
    who_help = "who the audit log names (default: cli)"

    cmd = cmds.add_parser(
        "add",
        help="add a budget",
        description="Add a budget: a limit in dollars on a scope's spend in a calendar period "
        "(starting at midnight in its timezone). Scope options left out mean any.",
    )
    cmd.add_argument("--url", help=url_help)
    cmd.add_argument("--name", required=True, help="the budget's name (unique)")
    cmd.add_argument("--limit", required=True, help="dollars per period, e.g. 100 or 12.50")
    cmd.add_argument("--period", required=True, choices=PERIOD_KINDS, help="calendar period")
    cmd.add_argument("--timezone", default="UTC", help="IANA name, e.g. Europe/Berlin (UTC)")
    cmd.add_argument("--user", help="only this user id's calls")
    cmd.add_argument("--customer", help="only the calls of this customer's users")
    cmd.add_argument("--feature", help="only this feature's calls")
    cmd.add_argument("--provider", help="only this provider's calls")
    cmd.add_argument("--model", help="only this model's calls")
    cmd.add_argument("--tag", action="append", metavar="KEY=VALUE", help="e.g. team=growth")
    cmd.add_argument(
        "--thresholds",
        metavar="P,P,...",
        help="soft alert percents, ascending, 1..1000 (default: 50,80,100)",
    )
    cmd.add_argument("--hard", action="store_true", help="the host app refuses calls beyond it")
    cmd.add_argument(
        "--rollover", action="store_true", help="unspent budget adds to the next period's"
    )
    cmd.add_argument("--who", default="cli", help=who_help)
    cmd.set_defaults(func=add)

    cmd = cmds.add_parser("list", help="every budget: spent this period, %% used, unknown cost")
    cmd.add_argument("--url", help=url_help)
    cmd.set_defaults(func=list_)

    cmd = cmds.add_parser("remove", help="remove a budget")
    cmd.add_argument("--url", help=url_help)
    cmd.add_argument("--name", required=True, help="the budget's name")
    cmd.add_argument("--who", default="cli", help=who_help)
    cmd.set_defaults(func=remove)
