"""The Overview and Costs pages, rendered with AppTest from the entry script on both stores.

Each test asserts what the page shows against an independent query of the store.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import streamlit as st
from sqlalchemy import Engine, func, select
from streamlit.testing.v1 import AppTest

from dashboard import demo
from tests.conftest import add_test_prices
from tracking.db import make_engine
from tracking.schema import calls, daily_rollups

ENTRY = str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py")


@pytest.fixture
def loaded(store_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """A store with gpt-4o priced (the demo's other models stay unpriced) and demo calls."""
    monkeypatch.setenv("UNITWISE_DATABASE_URL", store_url)
    st.cache_data.clear()
    add_test_prices(store_url)
    engine = make_engine(store_url)
    demo.load(engine, calls=3_000, days=20, seed=3)
    yield engine
    engine.dispose()
    st.cache_data.clear()


def run(page: str | None = None) -> AppTest:
    at = AppTest.from_file(ENTRY, default_timeout=60).run()
    if page:
        at.switch_page(f"../pages/{page}.py").run()
    assert not at.exception, at.exception
    return at


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def rollup_sum(engine: Engine, *where) -> tuple[int, Decimal, int]:
    r = daily_rollups.c
    with engine.connect() as conn:
        n, cost, unpriced = conn.execute(
            select(func.sum(r.calls), func.sum(r.cost_usd), func.sum(r.unpriced_calls)).where(
                *where
            )
        ).one()
    return int(n or 0), Decimal(cost or 0), int(unpriced or 0)


def test_overview_totals_equal_the_store(loaded: Engine) -> None:
    at = run()
    shown = metrics(at)
    n, cost, unpriced = rollup_sum(loaded)  # the default range (30 days) holds all 20 days
    assert shown["Calls"] == f"{n:,}"
    assert shown["Cost in range"] == f"${cost:,.2f}"
    assert cost > 0 and unpriced > 0
    (warning,) = at.warning
    assert warning.value.startswith(f"{unpriced:,} calls in this range are unpriced")
    assert "p50 latency" in shown and shown["p50 latency"].endswith(" ms")
    assert any("Store: " in c.value for c in at.sidebar.caption)


def test_overview_follows_the_provider_filter(loaded: Engine) -> None:
    at = run()
    at.multiselect(key="f_providers").select("openai").run()
    n, cost, _ = rollup_sum(loaded, daily_rollups.c.provider == "openai")
    shown = metrics(at)
    assert shown["Calls"] == f"{n:,}"
    assert shown["Cost in range"] == f"${cost:,.2f}"


def test_costs_table_by_feature_and_a_filter_changes_it(loaded: Engine) -> None:
    at = run("costs")
    at.radio(key="costs_group").set_value("feature").run()
    table = at.dataframe[0].value
    r = daily_rollups.c
    with loaded.connect() as conn:
        expected = {
            f: (int(n), Decimal(c))
            for f, n, c in conn.execute(
                select(r.feature, func.sum(r.calls), func.sum(r.cost_usd)).group_by(r.feature)
            )
        }
    assert set(table["feature"]) == set(expected)
    for row in table.itertuples():
        assert row.calls == expected[row.feature][0]
        assert row.cost_usd == pytest.approx(float(expected[row.feature][1]))
    assert metrics(at)["Groups"] == str(len(expected))
    n, cost, unpriced = rollup_sum(loaded)
    assert metrics(at)["Cost"] == f"${cost:,.2f}"  # exact, from SQL sums
    assert metrics(at)["Calls"] == f"{n:,}" and metrics(at)["Unpriced calls"] == f"{unpriced:,}"

    at.multiselect(key="f_providers").select("anthropic").run()
    narrowed = at.dataframe[0].value
    assert set(narrowed["feature"]) < set(table["feature"])
    assert int(narrowed["calls"].sum()) == rollup_sum(loaded, r.provider == "anthropic")[0]


def test_group_by_changes_the_rows(loaded: Engine) -> None:
    at = run("costs")
    assert at.dataframe[0].value.columns[0] == "feature"  # the default: the cheapest read
    at.radio(key="costs_group").set_value("user").run()
    by_user = at.dataframe[0].value
    assert by_user.columns[0] == "user"
    at.radio(key="costs_group").set_value("provider").run()
    by_provider = at.dataframe[0].value
    assert sorted(by_provider["provider"]) == ["anthropic", "google", "openai"]
    assert int(by_provider["calls"].sum()) == int(by_user["calls"].sum())
    at.radio(key="costs_group").set_value("day").run()
    by_day = at.dataframe[0].value
    assert list(by_day["day"]) == sorted(by_day["day"])
    assert int(by_day["calls"].sum()) == int(by_user["calls"].sum())


def test_drill_down_shows_the_calls_of_the_group(loaded: Engine) -> None:
    at = run("costs")
    at.radio(key="costs_group").set_value("feature").run()
    at.selectbox(key="drill_feature").select("chat").run()
    assert not at.exception
    page = at.dataframe[1].value
    with loaded.connect() as conn:
        total = conn.execute(
            select(func.count()).select_from(calls).where(calls.c.feature == "chat")
        ).scalar_one()
    assert len(page) == min(50, total)
    assert set(page["feature"]) == {"chat"}
    assert list(page["occurred_at"]) == sorted(page["occurred_at"], reverse=True)
    assert f"of {total:,}, newest first" in " ".join(c.value for c in at.caption)
    at.number_input(key="drill_page_feature").set_value(2).run()
    second = at.dataframe[1].value
    assert set(second["feature"]) == {"chat"}
    assert not set(second["occurred_at"]) & set(page["occurred_at"]) or len(second) == 0


def test_tag_filter_reads_the_calls_with_that_tag(loaded: Engine) -> None:
    at = run("costs")
    at.text_input(key="costs_tags").input("plan=pro").run()
    table = at.dataframe[0].value
    with loaded.connect() as conn:
        tagged = [t for t in conn.execute(select(calls.c.tags)).scalars() if t["plan"] == "pro"]
    assert int(table["calls"].sum()) == len(tagged) > 0


def test_coming_pages_say_what_will_come(loaded: Engine) -> None:
    for page in ("users", "pricing", "budgets"):
        at = run(page)
        assert at.info[0].value.startswith("Coming soon.")


def test_demo_button_loads_an_empty_store(store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UNITWISE_DATABASE_URL", store_url)
    monkeypatch.setattr(demo, "APP_CALLS", 500)
    st.cache_data.clear()
    at = run()
    assert "No calls logged yet" in at.info[0].value
    at.button[0].click().run()
    assert not at.exception
    assert metrics(at)["Calls"] != "0"
    engine = make_engine(store_url)
    assert rollup_sum(engine)[0] == 500
    engine.dispose()
