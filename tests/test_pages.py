"""The Overview and Costs pages, rendered with AppTest from the entry script on both stores.

Each test asserts what the page shows against an independent query of the store.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import streamlit as st
from sqlalchemy import Engine, func, select
from streamlit.testing.v1 import AppTest

from dashboard import demo
from dashboard.md_escape import md_plain
from dashboard.queries import MAX_GROUPS
from dashboard.tables import UNKNOWN
from tests.conftest import add_test_prices
from tracking.db import make_engine
from tracking.schema import calls, daily_rollups

ENTRY = str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py")


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


def test_overview_totals_equal_the_store(demo_app_store: Engine) -> None:
    at = run()
    shown = metrics(at)
    n, cost, unpriced = rollup_sum(demo_app_store)  # the default range (30 days) holds all 20 days
    assert shown["Calls"] == f"{n:,}"
    assert shown["Cost in range"] == f"${cost:,.2f}"
    assert cost > 0 and unpriced > 0
    (warning,) = at.warning
    assert warning.value.startswith(f"{unpriced:,} calls in this range are unpriced")
    assert "p50 latency" in shown and shown["p50 latency"].endswith((" ms", " s"))
    assert any("Store: " in c.value for c in at.sidebar.caption)


def test_overview_follows_the_provider_filter(demo_app_store: Engine) -> None:
    at = run()
    at.multiselect(key="f_providers").select("openai").run()
    n, cost, _ = rollup_sum(demo_app_store, daily_rollups.c.provider == "openai")
    shown = metrics(at)
    assert shown["Calls"] == f"{n:,}"
    assert shown["Cost in range"] == f"${cost:,.2f}"


def test_costs_table_by_feature_and_a_filter_changes_it(demo_app_store: Engine) -> None:
    at = run("costs")
    at.radio(key="costs_group").set_value("feature").run()
    table = at.dataframe[0].value
    r = daily_rollups.c
    with demo_app_store.connect() as conn:
        expected = {
            f: (int(n), Decimal(c))
            for f, n, c in conn.execute(
                select(r.feature, func.sum(r.calls), func.sum(r.cost_usd)).group_by(r.feature)
            )
        }
    assert set(table["feature"]) == set(expected)
    unpriced = unpriced_features(demo_app_store)
    assert unpriced, "the demo's unpriced models leave some features without a known cost"
    for row in table.itertuples():
        assert row.calls == expected[row.feature][0]
        if row.feature in unpriced:  # unknown, not $0
            assert row.cost_usd == UNKNOWN and row.note == "unpriced: cost unknown"
        else:
            assert row.cost_usd == pytest.approx(float(expected[row.feature][1]))
    assert metrics(at)["Groups"] == str(len(expected))
    n, cost, unpriced = rollup_sum(demo_app_store)
    assert metrics(at)["Cost"] == f"${cost:,.2f}"  # exact, from SQL sums
    assert metrics(at)["Calls"] == f"{n:,}" and metrics(at)["Unpriced calls"] == f"{unpriced:,}"

    at.multiselect(key="f_providers").select("anthropic").run()
    narrowed = at.dataframe[0].value
    assert set(narrowed["feature"]) < set(table["feature"])
    assert int(narrowed["calls"].sum()) == rollup_sum(demo_app_store, r.provider == "anthropic")[0]


def unpriced_features(engine: Engine) -> set[str]:
    r = daily_rollups.c
    with engine.connect() as conn:
        rows = conn.execute(
            select(r.feature, func.sum(r.calls), func.sum(r.unpriced_calls)).group_by(r.feature)
        ).all()
    return {feature for feature, n, unpriced in rows if n == unpriced}


def test_group_by_changes_the_rows(demo_app_store: Engine) -> None:
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


def test_drill_down_shows_the_calls_of_the_group(demo_app_store: Engine) -> None:
    at = run("costs")
    at.radio(key="costs_group").set_value("feature").run()
    at.selectbox(key="drill_feature").select("chat").run()
    assert not at.exception
    page = at.dataframe[1].value
    with demo_app_store.connect() as conn:
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


def test_tag_filter_reads_the_calls_with_that_tag(demo_app_store: Engine) -> None:
    at = run("costs")
    at.text_input(key="costs_tags").input("plan=pro").run()
    table = at.dataframe[0].value
    with demo_app_store.connect() as conn:
        tagged = [t for t in conn.execute(select(calls.c.tags)).scalars() if t["plan"] == "pro"]
    assert int(table["calls"].sum()) == len(tagged) > 0


def test_pages_without_filters_leave_them_as_they_were(demo_app_store: Engine) -> None:
    at = run()
    at.multiselect(key="f_providers").select("openai").run()
    for page in ("users", "pricing", "budgets"):
        at.switch_page(f"../pages/{page}.py").run()
        assert not at.exception, at.exception
        if page == "budgets":
            assert [t.label for t in at.tabs] == ["Budgets", "Alerts", "What-if"]
        assert not at.sidebar.multiselect and not at.sidebar.date_input  # filters unused here
    at.switch_page("../pages/overview.py").run()
    assert at.multiselect(key="f_providers").value == ["openai"]  # kept meanwhile


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


def record_calls(url: str, tmp_path: Path, calls_: list[dict]) -> None:
    """Log calls through tracking itself, as a service would."""
    import tracking

    tracking.configure(url=url, journal_path=str(tmp_path / "journal.jsonl"), flush_interval=0.05)
    try:
        for fields in calls_:
            tracking.record(**fields)
        assert tracking.flush(30)
    finally:
        tracking.shutdown(timeout=5)


@pytest.fixture
def fresh(store_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An empty store with gpt-4o priced, read by the app."""
    monkeypatch.setenv("UNITWISE_DATABASE_URL", store_url)
    st.cache_data.clear()
    add_test_prices(store_url)
    yield store_url
    st.cache_data.clear()


def test_headline_figures_count_every_group_beyond_the_table(fresh: str, tmp_path: Path) -> None:
    """More users than the table holds, narrowed by a tag: the figures are still exact."""
    users = MAX_GROUPS + 150
    record_calls(
        fresh,
        tmp_path,
        [
            {
                "provider": "openai",
                "model": "gpt-4o",
                "input_tokens": 1000 + 37 * i,
                "output_tokens": 10 + i,
                "user_id": f"user_{i:05d}",
                "tags": {"plan": "free" if i % 10 else "pro"},
            }
            for i in range(users)
        ],
    )
    engine = make_engine(fresh)
    with engine.connect() as conn:
        rows = conn.execute(select(calls.c.user_id, calls.c.cost_usd, calls.c.tags)).all()
    engine.dispose()
    free = [(u, c) for u, c, t in rows if t["plan"] == "free"]
    assert len(free) > MAX_GROUPS
    at = run("costs")
    at.radio(key="costs_group").set_value("user").run()
    at.text_input(key="costs_tags").input("plan=free").run()
    shown = metrics(at)
    assert shown["Cost"] == f"${sum(c for _, c in free):,.2f}"
    assert shown["Calls"] == f"{len(free):,}" and shown["Groups"] == f"{len(free):,}"
    assert len(at.dataframe[0].value) == MAX_GROUPS
    assert any(f"most expensive of {len(free):,} groups" in c.value for c in at.caption)
    at.text_input(key="costs_tags").input("").run()  # every user, from the rollups
    assert metrics(at)["Cost"] == f"${sum(c for _, c, _ in rows):,.2f}"
    assert metrics(at)["Groups"] == f"{users:,}"


def test_unpriced_calls_are_never_shown_as_zero(fresh: str, tmp_path: Path) -> None:
    record_calls(
        fresh,
        tmp_path,
        [{"provider": "acme", "model": "house-model", "input_tokens": 500}] * 3
        + [{"provider": "openai", "model": "gpt-4o", "input_tokens": 2_000}]
        + [{"provider": "openai", "model": "gpt-4o-mini-unknown", "input_tokens": 9}],
    )
    at = run("costs")
    at.radio(key="costs_group").set_value("model").run()
    table = at.dataframe[0].value.set_index("model")
    assert table.loc["house-model", "cost_usd"] == UNKNOWN  # shown as "unpriced"
    assert table.loc["house-model", "note"] == "unpriced: cost unknown"
    assert table.loc["house-model", "share_pct"] == UNKNOWN  # shown blank
    assert table.loc["gpt-4o", "cost_usd"] > 0 and table.loc["gpt-4o", "note"] == ""
    assert metrics(at)["Unpriced calls"] == "4"
    assert any("Plus 4 unpriced calls" in c.value for c in at.caption)
    at.radio(key="costs_group").set_value("provider").run()
    by_provider = at.dataframe[0].value.set_index("provider")
    assert by_provider.loc["openai", "note"] == "1 call unpriced"  # partly unpriced
    at.multiselect(key="f_providers").select("acme").run()
    assert metrics(at)["Cost"] == "unpriced"  # none of these calls has a known cost
    overview = run()
    overview.multiselect(key="f_providers").select("acme").run()
    assert metrics(overview)["Cost in range"] == "unpriced"
    assert metrics(overview)["Today so far"] == "unpriced"  # the calls were logged today
    assert metrics(overview)["Month to date"] == "unpriced"
    (warning,) = overview.warning
    assert "acme/house-model (3)" in md_plain(warning.value) and "prices add" in warning.value
    assert "prices reprice --url URL --unpriced" in warning.value


def test_a_call_dated_far_ahead_is_counted_not_followed(fresh: str) -> None:
    from tracking.events import CallEvent, uuid7
    from tracking.store import write_batch

    now = datetime.now(UTC)
    ahead = CallEvent(uuid7(), datetime(2099, 1, 1, tzinfo=UTC), "openai", "gpt-4o")
    today_call = CallEvent(uuid7(), now, "openai", "gpt-4o", input_tokens=10)
    engine = make_engine(fresh)
    with engine.begin() as conn:
        write_batch(conn, [ahead, today_call])
    engine.dispose()
    at = run()
    assert at.date_input(key="f_dates").value == (now.date() - timedelta(days=29), now.date())
    assert metrics(at)["Calls"] == "1"
    assert any("1 call is dated more than a day ahead" in w.value for w in at.warning)
    assert any("2099-01-01" in w.value for w in at.warning)


def test_malformed_tag_parts_are_named(demo_app_store: Engine) -> None:
    at = run("costs")
    at.text_input(key="costs_tags").input("plan:pro, =x").run()
    (warning,) = at.warning
    assert "`plan:pro`" in warning.value and "`=x`" in warning.value
    assert "key=value" in warning.value
    n, _, _ = rollup_sum(demo_app_store)
    assert metrics(at)["Calls"] == f"{n:,}"  # nothing was filtered, and the page says why


def test_the_model_list_follows_the_provider_filter(demo_app_store: Engine) -> None:
    at = run()
    everything = set(at.multiselect(key="f_models").options)
    at.multiselect(key="f_providers").select("anthropic").run()
    narrowed = set(at.multiselect(key="f_models").options)
    r = daily_rollups.c
    with demo_app_store.connect() as conn:
        anthropic = set(conn.execute(select(r.model).where(r.provider == "anthropic")).scalars())
    assert narrowed == anthropic < everything
