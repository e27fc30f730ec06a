"""Fixtures: a fresh, migrated SQLite and PostgreSQL store per test session, emptied per test.

Under CI=true the PostgreSQL tests are required: a server that cannot be reached fails the run
instead of skipping it.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import Engine, create_engine, delete, text
from sqlalchemy.engine import make_url

from tracking.db import make_engine, normalize_url
from tracking.migrate import upgrade
from tracking.schema import metadata

PG_ADMIN_URL = os.environ.get(
    "UNITWISE_TEST_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)
CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``slow`` (over ~20 s) run only under CI=true or UNITWISE_SLOW=1."""
    if CI or os.environ.get("UNITWISE_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow: set CI=true or UNITWISE_SLOW=1 to run it")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _strict_and_isolated(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """Tests see tracking's validation errors and never touch the user's own data dir."""
    monkeypatch.setenv("UNITWISE_STRICT", "1")
    monkeypatch.setenv("UNITWISE_DATA_DIR", str(tmp_path / "unitwise-data"))
    for name in ("UNITWISE_DATABASE_URL", "DATABASE_URL", "UNITWISE_TRACKING"):
        monkeypatch.delenv(name, raising=False)
    from tracking import client

    # no test inherits an earlier one's configure() (kept across shutdown) or its kill switch
    monkeypatch.setattr(client, "_settings", None)
    monkeypatch.setattr(client, "_disabled", {"on": False, "error": None})
    # the app's caches are keyed by the store's URL, and the tests share one store per kind:
    # a margins report an earlier test kept (st.cache_resource) showed 0 customers of 19
    cache = sys.modules.get("dashboard.cache")
    if cache is not None:
        cache.forget()


def _admin_engine() -> Engine:
    return create_engine(normalize_url(PG_ADMIN_URL), isolation_level="AUTOCOMMIT")


@contextmanager
def new_pg_database(prefix: str) -> Iterator[str]:
    """A new, empty PostgreSQL database, dropped afterwards. Unreachable server: the test is
    skipped, except under CI=true, where that fails it."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = _admin_engine()
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        admin.dispose()
        if CI:
            pytest.fail(f"PostgreSQL is required under CI=true and is unreachable: {exc}")
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL}: {exc}")
    url = make_url(normalize_url(PG_ADMIN_URL)).set(database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped at the end."""
    with new_pg_database("unitwise_test") as url:
        yield url


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('store') / 'unitwise.db'}"


@pytest.fixture(scope="session")
def _migrated(request: pytest.FixtureRequest) -> dict[str, str]:
    return {}


def _empty(engine: Engine) -> None:
    with engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(delete(table))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, _migrated: dict[str, str]) -> Iterator[str]:
    """The URL of an empty, migrated store: the same test runs on SQLite and on PostgreSQL."""
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    engine = make_engine(url)
    if url not in _migrated:
        upgrade(engine)
        _migrated[url] = url
    _empty(engine)
    engine.dispose()
    yield url


@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:
    eng = make_engine(store_url)
    yield eng
    eng.dispose()


_postgres_passed = {"count": 0}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" and report.passed and "postgres" in report.keywords:
        _postgres_passed["count"] += 1


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Under CI=true a run in which no PostgreSQL test passed is a failed run."""
    if CI and session.testscollected and _postgres_passed["count"] == 0 and exitstatus == 0:
        print("\nCI=true but no PostgreSQL test ran: failing the run.")
        session.exitstatus = 1


@pytest.fixture
def configured(store_url: str, tmp_path) -> Iterator[str]:
    """tracking configured against a fresh store with a fast writer; shut down afterwards."""
    import tracking

    tracking.configure(
        url=store_url, journal_path=str(tmp_path / "journal.jsonl"), flush_interval=0.05
    )
    yield store_url
    tracking.shutdown(timeout=5)


@pytest.fixture
def lenient(store_url: str, tmp_path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """tracking as a host app runs it: bad input is counted and logged, never raised."""
    import tracking

    monkeypatch.delenv("UNITWISE_STRICT")
    tracking.configure(
        url=store_url, journal_path=str(tmp_path / "journal.jsonl"), flush_interval=0.05
    )
    yield store_url
    tracking.shutdown(timeout=5)


def add_test_prices(url: str) -> None:
    """gpt-4o style prices (per 1M tokens: $2.50 in, $1.25 cached in, $10 out) from 2024-01-01."""
    from datetime import UTC, datetime
    from decimal import Decimal

    from tracking.price_store import RateRow, add_version

    eng = make_engine(url)
    with eng.begin() as conn:
        add_version(
            conn,
            "openai",
            "gpt-4o",
            datetime(2024, 1, 1, tzinfo=UTC),
            [
                RateRow("input_tokens", Decimal("2.5"), 1_000_000),
                RateRow("cache_read_tokens", Decimal("1.25"), 1_000_000),
                RateRow("output_tokens", Decimal("10"), 1_000_000),
            ],
            source="test",
        )
    eng.dispose()


@pytest.fixture
def demo_app_store(store_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """The app's store (UNITWISE_DATABASE_URL) with gpt-4o priced (the demo's other models stay
    unpriced) and demo calls; Streamlit's caches forgotten before and after."""
    import streamlit as st

    from dashboard import demo

    monkeypatch.setenv("UNITWISE_DATABASE_URL", store_url)
    st.cache_data.clear()
    add_test_prices(store_url)
    engine = make_engine(store_url)
    demo.load(engine, calls=3_000, days=20, seed=3)
    yield engine
    engine.dispose()
    st.cache_data.clear()


@pytest.fixture
def stub(monkeypatch: pytest.MonkeyPatch) -> Iterator:
    """A local server answering like the OpenAI and Anthropic APIs (tests/llm_stub.py); the SDK
    clients reach it directly, whatever proxy the environment names."""
    from tests.llm_stub import StubServer

    for name in (
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ):
        monkeypatch.delenv(name, raising=False)
    with StubServer() as server:
        yield server


def stored_calls(url: str) -> list:
    """Every logged call (after ``tracking.flush()``), oldest first."""
    from sqlalchemy import select

    from tracking.schema import calls

    eng = make_engine(url)
    with eng.connect() as conn:
        found = conn.execute(select(calls).order_by(calls.c.occurred_at)).all()
    eng.dispose()
    return found


def rollups_from_calls(conn, keys: tuple[str, ...]) -> dict[tuple, dict[str, object]]:
    """What a rollup keyed by ``keys`` must hold: the calls' totals per key, summed in Python."""
    from collections import defaultdict
    from decimal import Decimal

    from sqlalchemy import select

    from tracking.schema import ROLLUP_TOTALS, TOKEN_FIELDS, calls

    expected: dict[tuple, dict[str, object]] = {}
    for r in conn.execute(select(calls)):
        of_call = {"day": r.occurred_at.date(), "user_id": r.user_id or ""}
        of_call |= {"feature": r.feature or "", "provider": r.provider, "model": r.model}
        key = tuple(of_call[name] for name in keys)
        row = expected.setdefault(key, defaultdict(int, cost_usd=Decimal(0)))
        row["calls"] += 1
        row["error_calls"] += r.status != "ok"
        row["unpriced_calls"] += r.cost_usd is None
        row["cost_usd"] += r.cost_usd or Decimal(0)
        for name in TOKEN_FIELDS:
            row[name] += getattr(r, name) or 0
        row["duration_ms_sum"] += r.duration_ms or 0
    assert all(set(row) == set(ROLLUP_TOTALS) for row in expected.values())
    return expected


def assert_rollups_equal_the_calls(engine: Engine) -> None:
    """The invariant of the store: every rollup table holds, key by key and column by column,
    exactly the totals of the calls stored (no retention has run)."""
    from sqlalchemy import select

    from tracking.schema import ROLLUP_TABLES, ROLLUP_TOTALS, rollup_keys

    with engine.connect() as conn:
        for table in ROLLUP_TABLES:
            keys = rollup_keys(table)
            want = rollups_from_calls(conn, keys)
            have = {
                tuple(r._mapping[k] for k in keys): r._mapping for r in conn.execute(select(table))
            }
            assert set(have) == set(want), table.name
            for key, row in want.items():
                got = {name: have[key][name] for name in ROLLUP_TOTALS}
                assert got == dict(row), (table.name, key)


def run_together(work, threads: int = 4) -> None:
    """Run ``work`` in several threads started at once, switching between them as often as the
    interpreter allows: a step that is not atomic shows it here."""
    import sys
    import threading

    start = threading.Barrier(threads)

    def run() -> None:
        start.wait()
        work()

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        running = [threading.Thread(target=run) for _ in range(threads)]
        for t in running:
            t.start()
        for t in running:
            t.join()
    finally:
        sys.setswitchinterval(old)
