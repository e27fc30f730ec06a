"""What a new user meets: a store tracking makes itself has the reference prices, and a store
without any price says so (in stats() and once in the log) instead of storing every call
unpriced in silence."""

from __future__ import annotations

import logging
import time

import pytest
from sqlalchemy import delete, select

import tracking
from tests.test_writer import empty_pg_store
from tracking.db import make_engine
from tracking.schema import calls, model_patterns, price_versions, prices


def stored_costs(url: str) -> list:
    eng = make_engine(url)
    with eng.connect() as conn:
        found = list(conn.execute(select(calls.c.model, calls.c.cost_usd)).all())
    eng.dispose()
    return found


@pytest.mark.parametrize("explicit", [True, False], ids=["sqlite_url", "embedded_default"])
def test_a_new_sqlite_store_gets_the_reference_prices(tmp_path, explicit) -> None:
    url = f"sqlite:///{tmp_path / 'data' / 'unitwise.db'}"
    if explicit:
        tracking.configure(url=url, journal_path=str(tmp_path / "j.jsonl"), flush_interval=0.05)
    else:  # no URL anywhere: the embedded store in the data folder (the fixture's tmp folder)
        tracking.configure(flush_interval=0.05)
        url = f"sqlite:///{tmp_path / 'unitwise-data' / 'unitwise.db'}"
    try:
        tracking.record(provider="openai", model="gpt-4o", input_tokens=1000, output_tokens=100)
        assert tracking.flush(30)
        s = tracking.stats()
    finally:
        tracking.shutdown()
    ((model, cost),) = stored_costs(url)
    assert model == "gpt-4o" and cost is not None and cost > 0
    assert s["prices_loaded"] and not s["prices_empty"], s


@pytest.mark.postgres
def test_a_store_without_prices_says_so_once(pg_url, tmp_path, caplog) -> None:
    empty_pg_store(pg_url)
    eng = make_engine(pg_url)
    with eng.begin() as conn:
        for table in (prices, model_patterns, price_versions):
            conn.execute(delete(table))
    eng.dispose()
    caplog.set_level(logging.WARNING, logger="unitwise")
    reloading = {"flush_interval": 0.05, "price_refresh_interval": 0.1}
    tracking.configure(url=pg_url, journal_path=str(tmp_path / "j.jsonl"), **reloading)
    try:
        tracking.record(provider="openai", model="gpt-4o", input_tokens=1000)
        assert tracking.flush(10)
        time.sleep(0.6)  # the prices reloaded a few times meanwhile
        s = tracking.stats()
    finally:
        tracking.shutdown()
    assert s["prices_loaded"] is False and s["prices_empty"] is True, s
    assert s["refreshers"]["prices"]["error"] is None
    assert s["refreshers"]["prices"]["age_s"] < 5
    said = [r for r in caplog.records if "no prices" in r.getMessage()]
    assert len(said) == 1, [r.getMessage() for r in said]
    assert "python -m tracking migrate" in said[0].getMessage()
    assert stored_costs(pg_url) == [("gpt-4o", None)]


def test_the_embedded_migration_writes_no_alembic_lines_into_the_host_log(tmp_path, caplog) -> None:
    caplog.set_level(logging.INFO)  # a host app logging at INFO
    tracking.configure(
        url=f"sqlite:///{tmp_path / 'new.db'}", journal_path=str(tmp_path / "j.jsonl")
    )
    try:
        tracking.record(provider="openai", model="gpt-4o", input_tokens=10)
        assert tracking.flush(30)
    finally:
        tracking.shutdown()
    assert not [r for r in caplog.records if r.name.startswith("alembic")]
    assert logging.getLogger("alembic").level == logging.NOTSET  # left as the host had it
