"""The app rendered with AppTest from the entry script: it shows what is in the store."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select
from streamlit.testing.v1 import AppTest

from dashboard import demo
from tracking.db import make_engine
from tracking.schema import daily_rollups

ENTRY = str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py")


@pytest.fixture
def app_env(store_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("UNITWISE_DATABASE_URL", store_url)
    return store_url


def test_overview_on_an_empty_store_says_how_to_start(app_env: str) -> None:
    at = AppTest.from_file(ENTRY, default_timeout=30).run()
    assert not at.exception
    assert "No calls logged yet" in at.info[0].value
    assert any("Store:" in c.value for c in at.sidebar.caption)


def test_overview_shows_the_store_totals(app_env: str) -> None:
    engine = make_engine(app_env)
    demo.load(engine, calls=2_000, days=10, seed=3)
    with engine.connect() as conn:
        calls, cost = conn.execute(
            select(func.sum(daily_rollups.c.calls), func.sum(daily_rollups.c.cost_usd))
        ).one()
    engine.dispose()
    at = AppTest.from_file(ENTRY, default_timeout=30).run()
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Calls logged"] == f"{calls:,}"
    assert metrics["Total cost"] == f"${Decimal(cost):,.2f}"
