"""``python -m dashboard.report margins`` on both stores: its CSV and JSON rows are the margins
report's customers exactly (Decimal, not float), text cells are formula-safe in CSV only, a bad
option exits 2 naming it before the store is opened, and a store without the accounts tables
exits 1 saying how to migrate."""

from __future__ import annotations

import csv
import io
import json
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine

from dashboard import demo
from dashboard.accounts import write_plans, write_terms, write_users
from dashboard.economics import CustomerMargin, Plan, Term, margin_totals
from dashboard.margin_data import MarginsReport, margins_report
from dashboard.report import main
from tests.conftest import add_test_prices, new_pg_database
from tracking.db import make_engine
from tracking.events import CallEvent, uuid7
from tracking.migrate import upgrade
from tracking.store import write_batch

ROOT = Path(__file__).resolve().parent.parent
HEADER = [
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
]
HOSTILE_NAME = '=HYPERLINK("x")'
HOSTILE_ID = "@evil"
HOSTILE_PLAN = "-promo"
# more significant digits than a float keeps: a float anywhere on the way shows
BIG_PRICE = Decimal("98765432.123456789")
STRANGER_COST = Decimal("1.234567891")
PLAIN = re.compile(r"-?[0-9]+(\.[0-9]*[1-9])?")  # no exponent, no trailing zeros
FEE, INFRA = Decimal("2.9"), Decimal("1.5")


def run_report(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dashboard.report", "margins", *args],
        capture_output=True,
        text=True,
        encoding="utf-8",
        cwd=ROOT,
        timeout=180,
        check=False,
    )


@pytest.fixture
def period(engine: Engine, store_url: str) -> tuple[date, date]:
    """Demo calls and accounts over 30 days, a customer with hostile text on a plan dearer than
    a float can hold, and a priced call of a user no customer has; the period: 41 days."""
    add_test_prices(store_url)
    demo.load(engine, calls=2_000, days=30, seed=3)
    now = datetime.now(UTC)
    end = now.date()
    start = end - timedelta(days=40)
    when = now - timedelta(hours=1)
    with engine.begin() as conn:
        write_plans(conn, [Plan(HOSTILE_PLAN, BIG_PRICE)], "test", audit=False)
        write_terms(
            conn, [Term(HOSTILE_ID, HOSTILE_NAME, HOSTILE_PLAN, start)], "test", audit=False
        )
        write_users(conn, {"mallory": HOSTILE_ID}, "test", audit=False)
        write_batch(
            conn,
            [
                CallEvent(uuid7(), when, "openai", "gpt-4o", user_id="mallory",
                          input_tokens=3 * 10**6, cost_usd=Decimal("7.5"), cost_source="provider"),
                CallEvent(uuid7(), when, "openai", "gpt-4o", user_id="stranger",
                          input_tokens=10**6, cost_usd=STRANGER_COST, cost_source="provider"),
            ],
        )  # fmt: skip
    return start, end


def report_of(url: str, start: date, end: date, fee: Decimal, infra: Decimal) -> MarginsReport:
    eng = make_engine(url)
    with eng.connect() as conn:
        report = margins_report(conn, start, end, fee, infra)
    eng.dispose()
    return report


def csv_text(value: str | None) -> str:
    if value is None:
        return ""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def assert_money(cell: str, want: Decimal) -> None:
    assert PLAIN.fullmatch(cell), cell
    assert Decimal(cell) == want


def assert_csv_rows(out: str, customers: list[CustomerMargin]) -> None:
    reader = csv.DictReader(io.StringIO(out, newline=""))
    rows = list(reader)
    assert reader.fieldnames == HEADER
    assert [r["customer"] for r in rows] == [csv_text(m.customer_id) for m in customers]
    for row, m in zip(rows, customers, strict=True):
        assert row["name"] == csv_text(m.name)
        assert row["plan"] == csv_text(m.plan)
        for column in ("revenue", "ai_cost", "fees", "infra", "margin"):
            assert_money(row[column], getattr(m, column))
        if m.margin_pct is None:
            assert row["margin_pct"] == ""
        else:
            assert_money(row["margin_pct"], m.margin_pct)
        assert row["unpriced_calls"] == str(m.unpriced_calls)


def assert_json_rows(out: str, customers: list[CustomerMargin]) -> None:
    rows = json.loads(out)
    assert isinstance(rows, list)
    assert [r["customer"] for r in rows] == [m.customer_id for m in customers]
    for row, m in zip(rows, customers, strict=True):
        assert list(row) == HEADER
        assert (row["name"], row["plan"]) == (m.name, m.plan)
        for column in ("revenue", "ai_cost", "fees", "infra", "margin"):
            assert isinstance(row[column], str)
            assert_money(row[column], getattr(m, column))
        if m.margin_pct is None:
            assert row["margin_pct"] is None
        else:
            assert isinstance(row["margin_pct"], str)
            assert_money(row["margin_pct"], m.margin_pct)
        assert type(row["unpriced_calls"]) is int and row["unpriced_calls"] == m.unpriced_calls


def dollars(amount: Decimal) -> str:
    shown = f"{amount:f}"
    return "$" + (shown.rstrip("0").rstrip(".") if "." in shown else shown)


def assert_totals(err: str, report: MarginsReport) -> None:
    last = err.strip().splitlines()[-1]
    t = margin_totals(report.customers)
    assert f"{t.customers} customers" in last
    for label, amount in (("revenue", t.revenue), ("AI cost", t.ai_cost), ("margin", t.margin)):
        assert f"{label} {dollars(amount)}," in last or f"{label} {dollars(amount)} " in last
    outside = report.attribution.no_plan.cost
    assert outside >= STRANGER_COST
    assert f"plus {dollars(outside)} of AI cost outside every customer's term" in last


def test_the_cli_prints_the_report_as_csv_and_json(store_url: str, period) -> None:
    start, end = period
    report = report_of(store_url, start, end, FEE, INFRA)
    customers = report.customers
    assert len(customers) > 10
    assert any(m.margin_pct is None for m in customers) and any(m.unpriced_calls for m in customers)
    assert any(m.margin < 0 for m in customers)
    hostile = next(m for m in customers if m.customer_id == HOSTILE_ID)
    assert len(f"{hostile.revenue:f}".replace(".", "")) > 17  # beyond a float's digits

    common = ["--url", store_url, "--from", start.isoformat(), "--to", end.isoformat()]
    common += ["--fee-pct", "2.9", "--infra-per-month", "1.5"]
    done = run_report(*common)
    assert done.returncode == 0, done.stderr
    assert_csv_rows(done.stdout, customers)
    assert_totals(done.stderr, report)

    done = run_report(*common, "--format", "json")
    assert done.returncode == 0, done.stderr
    assert_json_rows(done.stdout, customers)
    assert_totals(done.stderr, report)


def test_a_hostile_name_is_text_in_csv_and_verbatim_in_json(
    store_url: str, period, capsys: pytest.CaptureFixture[str]
) -> None:
    start, end = period
    argv = ["margins", "--url", store_url, "--from", str(start), "--to", str(end)]
    argv += ["--infra-per-month", "1.5"]  # the free plan's customers lose money
    assert main(argv) == 0
    out = capsys.readouterr().out
    rows = list(csv.reader(io.StringIO(out, newline="")))[1:]
    (row,) = [r for r in rows if HOSTILE_NAME in r[1]]
    assert row[:3] == ["'" + HOSTILE_ID, "'" + HOSTILE_NAME, "'" + HOSTILE_PLAN]
    losing = [r for r in rows if r[7].startswith("-")]  # a negative amount is no text cell
    assert losing and all(Decimal(r[7]) < 0 for r in losing)
    assert "'-" not in out.replace("'" + HOSTILE_PLAN, "")

    assert main([*argv, "--format", "json"]) == 0
    (found,) = [r for r in json.loads(capsys.readouterr().out) if r["customer"] == HOSTILE_ID]
    assert (found["name"], found["plan"]) == (HOSTILE_NAME, HOSTILE_PLAN)


def test_main_in_process_matches_the_report_and_writes_output_whole(
    store_url: str, period, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    start, end = period
    report = report_of(store_url, start, end, Decimal(0), Decimal(0))  # the defaults
    argv = ["margins", "--url", store_url, "--from", str(start), "--to", str(end)]
    assert main([*argv, "--format", "json"]) == 0
    printed = capsys.readouterr()
    assert_json_rows(printed.out, report.customers)
    assert_totals(printed.err, report)
    assert all(Decimal(r["fees"]) == 0 == Decimal(r["infra"]) for r in json.loads(printed.out))

    target = tmp_path / "margins.csv"
    target.write_text("an older, longer report\n" * 1000)
    assert main([*argv, "--output", str(target)]) == 0
    printed = capsys.readouterr()
    assert printed.out == ""
    written = target.read_bytes().decode("utf-8")
    assert written.startswith(",".join(HEADER) + "\r\n")
    assert_csv_rows(written, report.customers)
    assert_totals(printed.err, report)
    assert [p.name for p in tmp_path.iterdir()] == ["margins.csv"]  # no temporary file left


DAYS = ["--from", "2026-03-01", "--to", "2026-03-31"]
BAD = [
    ([], "--from"),
    (["--from", "2026-03-01"], "--to"),
    (["--from", "2026-13-01", "--to", "2026-12-31"], "--from"),
    (["--from", "20260301", "--to", "2026-03-31"], "--from"),
    (["--from", "2026-03-01", "--to", "2026-W10-1"], "--to"),
    (["--from", "2026-03-10", "--to", "2026-03-09"], "--from 2026-03-10 is after --to"),
    ([*DAYS, "--fee-pct", "-1"], "--fee-pct"),
    ([*DAYS, "--fee-pct", "abc"], "--fee-pct"),
    ([*DAYS, "--fee-pct", "NaN"], "--fee-pct"),
    ([*DAYS, "--fee-pct", "101"], "--fee-pct"),
    ([*DAYS, "--infra-per-month", "-0.5"], "--infra-per-month"),
    ([*DAYS, "--infra-per-month", "inf"], "--infra-per-month"),
    ([*DAYS, "--infra-per-month", "1e12"], "--infra-per-month"),
    ([*DAYS, "--format", "xml"], "--format"),
    ([*DAYS, "--output", "{missing}/margins.csv"], "--output"),
    ([*DAYS, "--output", "{tmp}"], "--output"),
    ([*DAYS, "--url", "sqlite://"], "--url"),
    ([*DAYS, "--url", "not a url"], "--url"),
]


@pytest.mark.parametrize(("extra", "named"), BAD)
def test_a_bad_option_exits_2_naming_it_before_the_store_is_opened(
    extra: list[str], named: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store_dir = tmp_path / "not-yet"  # make_engine would create it: proof the store stayed shut
    argv = ["margins", "--url", f"sqlite:///{store_dir / 'unitwise.db'}"]
    argv += [a.format(missing=tmp_path / "missing", tmp=tmp_path) for a in extra]
    assert main(argv) == 2
    printed = capsys.readouterr()
    assert printed.out == ""
    assert named in printed.err, printed.err
    assert list(tmp_path.iterdir()) == []  # no store, no output file


def test_a_bad_option_exits_2_from_the_command_line_too(tmp_path: Path) -> None:
    done = run_report("--url", f"sqlite:///{tmp_path / 'x.db'}", "--from", "2026-03-01",
                      "--to", "2026-03-31", "--fee-pct", "2.9%")  # fmt: skip
    assert done.returncode == 2 and done.stdout == ""
    assert "--fee-pct" in done.stderr and "'2.9%' is not a number" in done.stderr
    assert not (tmp_path / "x.db").exists()


def test_help_says_text_cells_get_an_apostrophe(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["margins", "--help"]) == 0
    said = " ".join(capsys.readouterr().out.split())
    assert "leading apostrophe" in said and "= + - @" in said and "CSV only" in said


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def older_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A store migrated only to 0003, before the accounts tables: a fresh SQLite file or a fresh
    PostgreSQL database (dropped afterwards)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'older.db'}"
        eng = make_engine(url)
        upgrade(eng, "0003", quiet=True)
        eng.dispose()
        yield url
        return
    with new_pg_database("unitwise_report") as url:
        eng = make_engine(url)
        upgrade(eng, "0003", quiet=True)
        eng.dispose()
        yield url


def test_a_store_without_the_accounts_tables_exits_1(
    older_store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "kept.csv"
    target.write_text("yesterday's report\n")
    argv = ["margins", "--url", older_store, "--from", "2026-03-01", "--to", "2026-03-31"]
    assert main([*argv, "--output", str(target)]) == 1
    printed = capsys.readouterr()
    assert printed.out == ""
    assert "plans, customers, customer_users, revenue tables" in printed.err
    assert "python -m tracking migrate --url URL" in printed.err
    assert "Traceback" not in printed.err
    assert target.read_text() == "yesterday's report\n"


def test_an_empty_or_missing_sqlite_file_exits_1_and_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    for path in (empty, tmp_path / "missing" / "unitwise.db"):
        argv = ["margins", "--url", f"sqlite:///{path}", "--from", "2026-03-01"]
        assert main([*argv, "--to", "2026-03-31"]) == 1
        err = capsys.readouterr().err
        assert "python -m tracking migrate --url URL" in err, err
    assert not (tmp_path / "missing").exists()
