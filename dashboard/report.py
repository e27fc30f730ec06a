"""``python -m dashboard.report margins``: the margins report for a script or a cron job.

One row per customer (``dashboard.margin_data.margins_report``) as CSV or JSON, money as exact
plain decimal text, never floats; a final line on stderr with the totals. Every input is
checked before the store is opened: a bad one exits 2 naming the option, and nothing is
written. A store that cannot be read, or has no accounts tables yet, exits 1. No Streamlit.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import re
import stat
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dashboard.csv_export import safe_text
from tracking.config import ENV_URL, resolve_url
from tracking.db import describe_url, make_engine, normalize_url
from tracking.sqltypes import plain_decimal

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from dashboard.margin_data import MarginsReport

COLUMNS = (
    "customer",
    "name",
    "plan",
    "revenue",
    "ai_cost",
    "fees",
    "infra",
    "margin",
    "margin_pct",
    "unpriced_calls",
)
TEXT_COLUMNS = ("customer", "name", "plan")
MONEY_COLUMNS = ("revenue", "ai_cost", "fees", "infra", "margin")
# what a spreadsheet reads as the start of a formula (OWASP's list: = + - @, tab, CR)
# the tables the report reads: the accounts (migration 0004) and the per-user rollup (0002)
NEEDED_TABLES = ("plans", "customers", "customer_users", "revenue", "daily_user_rollups")
MAX_INFRA = Decimal(10) ** 11  # the store's money columns hold less than $100 billion
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")

URL_HELP = "database URL (default: $UNITWISE_DATABASE_URL, $DATABASE_URL, the local SQLite)"
DESCRIPTION = (
    "Reports of a Unitwise store for scripts and cron jobs. 'margins': one row per customer "
    "over the days --from..--to."
)
MARGINS_DESCRIPTION = (
    "One row per customer with a subscription term active in the period or a revenue line "
    "overlapping it: customer, name, plan, revenue, ai_cost, fees, infra, margin, margin_pct, "
    "unpriced_calls. Money is exact decimal text in dollars (never a float); margin_pct is "
    "margin / revenue in percent, empty (CSV) or null (JSON) when the revenue is 0; "
    "unpriced_calls counts the calls left out of ai_cost because their cost is unknown. "
    "CSV has a header row. In CSV only, a text cell (customer, name, plan) that starts with "
    "= + - @, a tab or a carriage return gets a leading apostrophe (') so that a spreadsheet "
    "shows it as text instead of running it as a formula; JSON keeps every value verbatim. "
    "JSON is a list of objects with those keys: money and margin_pct as strings, "
    "unpriced_calls as a number. A final line on stderr gives the totals, and the AI cost of "
    "calls outside every customer's term. Exit status: 0 done, 2 a bad option (nothing read "
    "or written), 1 the store cannot be read or has no accounts tables (run python -m "
    "tracking migrate --url URL)."
)


@dataclass(frozen=True)
class MarginsRequest:
    """The checked options of ``margins``."""

    url: str
    start: date
    end: date
    fee_pct: Decimal
    infra_per_month: Decimal
    format: str
    output: Path | None


# --- options -----------------------------------------------------------------------------------


def _day(text: str) -> date:
    """YYYY-MM-DD, strictly (Python's fromisoformat also takes 20260301 and 2026-W10-1)."""
    if _DAY.fullmatch(text):
        try:
            day = date.fromisoformat(text)
        except ValueError:
            pass
        else:
            if day < date.max:
                return day
    raise argparse.ArgumentTypeError(f"{text!r} is not a day: write YYYY-MM-DD")


def _decimal(text: str, most: Decimal, what: str) -> Decimal:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value.is_finite() or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite, non-negative number")
    if value > most:
        raise argparse.ArgumentTypeError(f"{text!r} is more than {what}")
    return value.copy_abs() if value.is_zero() else value  # -0 -> 0, nothing rounded


def _fee_pct(text: str) -> Decimal:
    return _decimal(text, Decimal(100), "100 percent")


def _infra(text: str) -> Decimal:
    return _decimal(text, MAX_INFRA, f"${MAX_INFRA:,} a month")


def _output(text: str) -> Path | None:
    """A file to write, or None (stdout) for '-': not a folder, in a folder that exists and can
    be written. Nothing is created until the report is complete."""
    if text == "-":
        return None
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty file name")
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a folder, not a file")
    folder = path.resolve().parent  # a symlink's target is what gets written
    if not folder.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r}: the folder {str(folder)!r} does not exist")
    if path.exists() and not path.is_file():
        if not os.access(path, os.W_OK):  # a device or a pipe, written in place
            raise argparse.ArgumentTypeError(f"{text!r} is not writable")
    elif not os.access(folder, os.W_OK):
        raise argparse.ArgumentTypeError(f"{text!r}: the folder {str(folder)!r} is not writable")
    return path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m dashboard.report", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True)
    margins = sub.add_parser(
        "margins",
        help="one row per customer: revenue, AI cost, fees, infra, margin",
        description=MARGINS_DESCRIPTION,
    )
    margins.add_argument("--url", help=URL_HELP)
    margins.add_argument(
        "--from",
        dest="start",
        type=_day,
        required=True,
        metavar="YYYY-MM-DD",
        help="first UTC day of the period",
    )
    margins.add_argument(
        "--to",
        dest="end",
        type=_day,
        required=True,
        metavar="YYYY-MM-DD",
        help="last UTC day of the period, included (not before --from)",
    )
    margins.add_argument(
        "--fee-pct",
        type=_fee_pct,
        default=Decimal(0),
        metavar="PCT",
        help="payment fees in percent of the revenue, e.g. 2.9 (0 to 100; default 0)",
    )
    margins.add_argument(
        "--infra-per-month",
        type=_infra,
        default=Decimal(0),
        metavar="DOLLARS",
        help="infrastructure cost per customer and month, prorated by the days a term is "
        "active (default 0)",
    )
    margins.add_argument(
        "--format", choices=("csv", "json"), default="csv", help="csv (default) or json"
    )
    margins.add_argument(
        "--output",
        type=_output,
        metavar="FILE",
        help="write the rows to FILE (replaced whole once the report is complete) instead of "
        "stdout",
    )
    margins.set_defaults(func=_margins, parser=margins)
    return parser


def _url_source(given: str | None) -> str:
    """Where the URL came from, to name in a message."""
    if given:
        return "--url"
    for name in ENV_URL:
        if os.environ.get(name):
            return f"--url (from ${name})"
    return "--url (the local SQLite default)"


def margins_request(args: argparse.Namespace) -> MarginsRequest:
    """The options checked together (each alone is checked by its type); a bad one exits 2."""
    parser: argparse.ArgumentParser = args.parser
    if args.end < args.start:
        parser.error(f"--from {args.start} is after --to {args.end}")
    url = resolve_url(args.url)
    try:
        parsed = normalize_url(url)
    except Exception:
        parser.error(f"{_url_source(args.url)}: not a database URL")
    if parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:"):
        parser.error(f"{_url_source(args.url)}: an in-memory SQLite has no store to report on")
    return MarginsRequest(
        url=url,
        start=args.start,
        end=args.end,
        fee_pct=args.fee_pct,
        infra_per_month=args.infra_per_month,
        format=args.format,
        output=args.output,
    )


# --- the rows ----------------------------------------------------------------------------------


def _money(amount: Decimal) -> str:
    return plain_decimal(amount)


def report_rows(report: MarginsReport) -> list[dict[str, Any]]:
    """The report's customers as the JSON rows: money and margin_pct as exact decimal text
    (margin_pct None when there is no revenue), unpriced_calls an int, text verbatim."""
    return [
        {
            "customer": m.customer_id,
            "name": m.name,
            "plan": m.plan,
            "revenue": _money(m.revenue),
            "ai_cost": _money(m.ai_cost),
            "fees": _money(m.fees),
            "infra": _money(m.infra),
            "margin": _money(m.margin),
            "margin_pct": None if m.margin_pct is None else plain_decimal(m.margin_pct),
            "unpriced_calls": m.unpriced_calls,
        }
        for m in report.customers
    ]


def to_csv(rows: Sequence[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for row in rows:
        cells = []
        for column in COLUMNS:
            value = row[column]
            if value is None:
                cells.append("")
            elif column in TEXT_COLUMNS:
                cells.append(safe_text(value))
            else:
                cells.append(str(value))
        writer.writerow(cells)
    return buffer.getvalue()


def to_json(rows: Sequence[dict[str, Any]]) -> str:
    return json.dumps(list(rows), ensure_ascii=False, indent=2) + "\n"


def totals_line(report: MarginsReport) -> str:
    """The stderr summary: totals over the customers, and the cost no customer's term owns."""
    from dashboard.economics import margin_totals

    t = margin_totals(report.customers)
    pct = "no revenue" if t.margin_pct is None else f"{plain_decimal(t.margin_pct)}%"
    line = (
        f"Totals {report.start}..{report.end}: {t.customers:,} "
        f"customer{'' if t.customers == 1 else 's'}, revenue ${_money(t.revenue)}, "
        f"AI cost ${_money(t.ai_cost)}, fees ${_money(t.fees)}, infra ${_money(t.infra)}, "
        f"margin ${_money(t.margin)} ({pct})"
    )
    if t.unpriced_calls:
        line += f"; {t.unpriced_calls:,} unpriced calls not in the AI cost"
    outside = report.attribution.no_plan
    if outside.cost or outside.unpriced_calls or report.attribution.no_plan_users:
        line += f"; plus ${_money(outside.cost)} of AI cost outside every customer's term"
        if outside.unpriced_calls:
            line += f" (and {outside.unpriced_calls:,} unpriced calls there)"
    return line + "."


# --- the store ---------------------------------------------------------------------------------


class StoreProblem(Exception):
    """The store cannot give the report (exit 1): missing, or not migrated."""


def _check_sqlite_file(url: str) -> None:
    """A SQLite URL names a file that exists: opening a missing one would create it."""
    parsed = normalize_url(url)
    if parsed.get_backend_name() != "sqlite":
        return
    name = parsed.database or ""
    if name.startswith("file:"):  # an SQLite URI (?uri=true): its own options decide
        return
    if not Path(name).is_file():
        raise StoreProblem(
            f"no store at {name} (create one with: python -m tracking migrate --url URL)"
        )


def _check_tables(conn: Connection) -> None:
    from sqlalchemy import inspect

    have = inspect(conn)
    missing = [name for name in NEEDED_TABLES if not have.has_table(name)]
    if missing:
        raise StoreProblem(
            f"{describe_url(conn.engine.url)} has no {', '.join(missing)} "
            f"table{'' if len(missing) == 1 else 's'}: it is not migrated to this version; "
            "run: python -m tracking migrate --url URL"
        )


def _snapshot(conn: Connection) -> None:
    """Every read of the report from one snapshot, read-only: accounts and costs agree even
    while calls are being written."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
    elif conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN")  # pysqlite would run each SELECT in its own snapshot


def read_report(request: MarginsRequest) -> MarginsReport:
    from dashboard.margin_data import margins_report

    _check_sqlite_file(request.url)
    engine = make_engine(request.url)
    try:
        with engine.connect() as conn:
            _check_tables(conn)
            conn.rollback()  # the inspection's transaction; the report's begins afresh
            _snapshot(conn)
            report = margins_report(
                conn, request.start, request.end, request.fee_pct, request.infra_per_month
            )
            conn.rollback()
    finally:
        engine.dispose()
    return report


# --- output ------------------------------------------------------------------------------------


def _write(text: str, output: Path | None) -> None:
    data = text.encode("utf-8")
    if output is None:
        out = getattr(sys.stdout, "buffer", None)
        if out is None:  # a text-only stream (tests that swap sys.stdout)
            sys.stdout.write(text)
        else:
            sys.stdout.flush()
            out.write(data)
            out.flush()
        return
    if output.exists() and not output.is_file():  # a device or a pipe: written in place
        with output.open("wb") as f:
            f.write(data)
        return
    # a reader of FILE sees the old report or the new one, never half of one
    target = output.resolve()
    mode = stat.S_IMODE(target.stat().st_mode) if target.exists() else 0o666 & ~_umask()
    fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(temp, mode)
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _margins(args: argparse.Namespace) -> int:
    request = margins_request(args)
    try:
        report = read_report(request)
    except StoreProblem as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # a clear line, not a traceback, for an unreachable store etc.
        first = (str(exc).splitlines() or [""])[0]
        print(f"error: {type(exc).__name__}: {first}", file=sys.stderr)
        return 1
    rows = report_rows(report)
    text = to_csv(rows) if request.format == "csv" else to_json(rows)
    try:
        _write(text, request.output)
    except BrokenPipeError:  # | head: the reader left; say nothing more on stdout
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as exc:
        print(f"error: --output {request.output}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(totals_line(report), file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        return int(args.func(args))
    except SystemExit as exc:  # argparse: a bad option (2) or --help (0)
        return exc.code if isinstance(exc.code, int) else 2


if __name__ == "__main__":
    raise SystemExit(main())
