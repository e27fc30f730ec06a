"""The app's reads on both stores: parameterised filters, exact money, bounded raw reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pandas as pd
import pytest
from sqlalchemy import Engine, func, select

from dashboard import breakdown, demo, queries
from dashboard.queries import Filters
from tests.conftest import add_test_prices
from tracking.schema import calls, daily_feature_model_rollups, daily_rollups, daily_user_rollups

END = datetime(2026, 11, 20, 15, tzinfo=UTC)
RANGE = Filters(END.date() - timedelta(days=13), END.date())


@pytest.fixture
def loaded(engine: Engine, store_url: str) -> Engine:
    add_test_prices(store_url)
    demo.load(engine, 3_000, 14, 9, end=END)
    return engine


def test_day_frame_totals_are_the_rollups_exactly(loaded: Engine) -> None:
    frame = queries.day_frame(loaded, RANGE)
    r = daily_rollups.c
    with loaded.connect() as conn:
        n, cost, unpriced = conn.execute(
            select(func.sum(r.calls), func.sum(r.cost_usd), func.sum(r.unpriced_calls))
        ).one()
    t = breakdown.totals(frame)
    assert (t.calls, t.cost_usd, t.unpriced_calls) == (n, cost, unpriced)
    assert isinstance(t.cost_usd, Decimal) and t.cost_usd > 0
    assert queries.totals(loaded, RANGE) == t


def test_filters_are_bound_parameters_not_sql(loaded: Engine) -> None:
    hostile = Filters(RANGE.start, RANGE.end, users=("x' OR '1'='1",), tags=(("plan'--", "pro"),))
    assert queries.totals(loaded, hostile).calls == 0
    assert queries.cost_by(loaded, hostile, "user").empty
    compiled = str(select(calls.c.id).where(*queries._calls_where(hostile)).compile(loaded))
    assert "OR '1'='1" not in compiled


def test_cost_by_user_matches_the_raw_calls(loaded: Engine) -> None:
    table = queries.cost_by(loaded, RANGE, "user")
    with loaded.connect() as conn:
        raw = {
            u: (n, c or Decimal(0))
            for u, n, c in conn.execute(
                select(calls.c.user_id, func.count(), func.sum(calls.c.cost_usd)).group_by(
                    calls.c.user_id
                )
            )
        }
    assert len(table) == len(raw)
    for row in table.itertuples():
        assert row.calls == raw[row.user][0]
        assert row.cost_usd == pytest.approx(float(raw[row.user][1]))
    assert list(table["cost_usd"]) == sorted(table["cost_usd"], reverse=True)
    assert table["share_pct"].sum() == pytest.approx(100)


def test_latency_is_exact_when_small_and_sampled_when_large(loaded: Engine) -> None:
    with loaded.connect() as conn:
        durations = pd.Series(conn.execute(select(calls.c.duration_ms)).scalars().all())
    exact = queries.latency(loaded, RANGE, in_range=len(durations))
    assert exact.exact and exact.sampled == len(durations)
    assert exact.p50_ms == pytest.approx(durations.quantile(0.5))
    assert exact.p95_ms == pytest.approx(durations.quantile(0.95))
    sampled = queries.latency(loaded, RANGE, in_range=len(durations), sample=300)
    assert not sampled.exact and 0 < sampled.sampled <= 600
    assert sampled.p50_ms is not None and 0.5 * exact.p50_ms < sampled.p50_ms < 2 * exact.p50_ms


def test_drill_down_pages_through_a_group(loaded: Engine) -> None:
    first = queries.drill_down(loaded, RANGE, "user", "user_0000", page=0, size=20)
    second = queries.drill_down(loaded, RANGE, "user", "user_0000", page=1, size=20)
    assert len(first) == len(second) == 20
    assert set(first["user_id"]) == set(second["user_id"]) == {"user_0000"}
    assert first["occurred_at"].min() >= second["occurred_at"].max()
    day = first["occurred_at"].iloc[0].date()
    by_day = queries.drill_down(loaded, RANGE, "day", day, size=500)
    assert {t.date() for t in by_day["occurred_at"]} == {day}


def test_store_span(loaded: Engine, engine: Engine) -> None:
    span = queries.store_span(loaded)
    assert span.last_day == END.date() and span.first_day == RANGE.start


def test_top_users_are_the_head_of_cost_by_user(loaded: Engine) -> None:
    top = queries.top_users(loaded, RANGE, n=5)
    full = queries.cost_by(loaded, RANGE, "user")
    assert list(top["user"]) == list(full["user"].head(5))
    assert list(top["calls"]) == list(full["calls"].head(5))
    assert top["cost_usd"].tolist() == pytest.approx(full["cost_usd"].head(5).tolist())


def _with(**narrowed: tuple[str, ...]) -> Filters:
    return Filters(RANGE.start, RANGE.end, **narrowed)


def test_rollup_for_takes_the_smallest_table_holding_every_key_read() -> None:
    cases = [
        (_with(), (), daily_feature_model_rollups),
        (_with(), ("provider", "model", "feature"), daily_feature_model_rollups),
        (_with(models=("gpt-4o",), features=("chat",)), ("day",), daily_feature_model_rollups),
        (_with(), ("user_id",), daily_user_rollups),
        (_with(users=("user_0001",)), ("day",), daily_user_rollups),
        (_with(users=("user_0001",)), ("feature",), daily_rollups),
        (_with(providers=("openai",)), ("user_id",), daily_rollups),
    ]
    for f, grouped, table in cases:
        assert queries.rollup_for(f, *grouped) is table, (f, grouped)


FILTER_SETS = [
    _with(),
    _with(providers=("openai",)),
    _with(features=("chat", "summarize"), models=("gpt-4o",)),
    _with(users=("user_0000", "user_0001", "user_0002")),
    _with(users=("user_0000", "user_0001"), features=("chat",)),
]


def _every_read(engine: Engine, f: Filters) -> dict[str, object]:
    frame = queries.day_frame(engine, f).sort_values(["day", "provider", "model", "feature"])
    reads: dict[str, object] = {"day_frame": frame.reset_index(drop=True)}
    reads["totals"] = queries.totals(engine, f)
    reads["top_users"] = queries.top_users(engine, f)
    for group in queries.GROUPS:
        reads[group] = queries.cost_by(engine, f, group)
    return reads


def test_each_read_answers_the_same_from_the_rollup_it_picks_and_from_daily_rollups(
    loaded: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    picked = {f: _every_read(loaded, f) for f in FILTER_SETS}
    assert picked[FILTER_SETS[0]]["totals"].calls > 0
    assert not picked[FILTER_SETS[3]]["user"].empty and not picked[FILTER_SETS[4]]["user"].empty
    monkeypatch.setattr(queries, "ROLLUPS_SMALLEST_FIRST", (daily_rollups,))
    for f in FILTER_SETS:
        finest = _every_read(loaded, f)
        for name, got in picked[f].items():
            if isinstance(got, pd.DataFrame):
                pd.testing.assert_frame_equal(got, finest[name], obj=f"{name} {f}")
            else:
                assert got == finest[name], (name, f)
        for group in queries.GROUPS:  # and the raw calls agree
            raw = queries._cost_by_from_calls(loaded, f, group, queries.MAX_GROUPS)
            pd.testing.assert_frame_equal(picked[f][group], raw, obj=f"{group} {f}")
