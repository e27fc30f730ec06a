"""The app's reads on both stores: parameterised filters, exact money, bounded raw reads."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pandas as pd
import pytest
from sqlalchemy import Engine, func, select

import tracking
from dashboard import breakdown, demo, queries, raw_calls
from dashboard.queries import Filters
from tests.conftest import add_test_prices
from tracking.schema import calls, daily_feature_model_rollups, daily_rollups, daily_user_rollups
from tracking.sqltypes import to_nanos

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
    assert queries.cost_by(loaded, hostile, "user").table.empty
    where = raw_calls.calls_where(hostile, loaded.dialect.name)
    compiled = str(select(calls.c.id).where(*where).compile(loaded))
    assert "OR '1'='1" not in compiled


def test_cost_by_user_matches_the_raw_calls(loaded: Engine) -> None:
    table = queries.cost_by(loaded, RANGE, "user").table
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
        assert row.cost_nanos == to_nanos(raw[row.user][1])
    assert list(table["cost_nanos"]) == sorted(table["cost_nanos"], reverse=True)
    assert table["share_pct"].sum() == pytest.approx(100)


def test_latency_is_exact_when_small_and_sampled_when_large(loaded: Engine) -> None:
    with loaded.connect() as conn:
        durations = pd.Series(conn.execute(select(calls.c.duration_ms)).scalars().all())
    exact = raw_calls.latency(loaded, RANGE, in_range=len(durations))
    assert exact.exact and exact.sampled == len(durations)
    assert exact.p50_ms == pytest.approx(durations.quantile(0.5))
    assert exact.p95_ms == pytest.approx(durations.quantile(0.95))
    sampled = raw_calls.latency(loaded, RANGE, in_range=len(durations), sample=300)
    assert not sampled.exact and 0 < sampled.sampled <= 600
    assert sampled.p50_ms is not None and 0.5 * exact.p50_ms < sampled.p50_ms < 2 * exact.p50_ms


def test_drill_down_pages_through_a_group(loaded: Engine) -> None:
    first = raw_calls.drill_down(loaded, RANGE, "user", "user_0000", page=0, size=20)
    second = raw_calls.drill_down(loaded, RANGE, "user", "user_0000", page=1, size=20)
    assert len(first) == len(second) == 20
    assert set(first["user_id"]) == set(second["user_id"]) == {"user_0000"}
    assert first["occurred_at"].min() >= second["occurred_at"].max()
    day = first["occurred_at"].iloc[0].date()
    by_day = raw_calls.drill_down(loaded, RANGE, "day", day, size=500)
    assert {t.date() for t in by_day["occurred_at"]} == {day}


def test_store_span(loaded: Engine, engine: Engine) -> None:
    span = queries.store_span(loaded)
    assert span.last_day == END.date() and span.first_day == RANGE.start


def test_top_users_are_the_head_of_cost_by_user(loaded: Engine) -> None:
    top = queries.top_users(loaded, RANGE, n=5)
    full = queries.cost_by(loaded, RANGE, "user").table
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
        grouped = queries.cost_by(engine, f, group)
        reads[group] = grouped.table
        reads[f"{group} totals"] = (grouped.groups, grouped.totals)
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
            pd.testing.assert_frame_equal(picked[f][group], raw.table, obj=f"{group} {f}")
            assert picked[f][f"{group} totals"] == (raw.groups, raw.totals), (group, f)
            assert raw.totals == picked[f]["totals"], (group, f)


def test_totals_count_every_group_when_the_table_is_cut(loaded: Engine) -> None:
    """The figures of a group-by are exact over all its groups, however few the table holds."""
    everything = queries.totals(loaded, RANGE)
    cut = queries.cost_by(loaded, RANGE, "user", limit=3)
    assert len(cut.table) == 3 < cut.groups
    assert cut.totals == everything

    tagged = Filters(RANGE.start, RANGE.end, tags=(("plan", "free"),))
    with loaded.connect() as conn:
        rows = conn.execute(select(calls.c.user_id, calls.c.cost_usd, calls.c.tags)).all()
    free = [(user, cost) for user, cost, tags in rows if tags.get("plan") == "free"]
    cut = queries.cost_by(loaded, tagged, "user", limit=3)
    assert len(cut.table) == 3 < cut.groups == len({user for user, _ in free})
    assert cut.totals.calls == len(free)
    assert cut.totals.cost_usd == sum((c for _, c in free if c is not None), Decimal(0))


HUGE_TAGS = [{"n": 0}, {"n": 10**30}, {"n": 12345678901234567890}, {"n": "1e999"}]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1e999", {3}),  # beyond a double: matched as text (it crashed or hung SQLite)
        ("1e999999", set()),  # PostgreSQL's numeric overflowed; SQLite built a 1M-digit int
        ("1e-999", set()),  # not the number 0 (it was on SQLite)
        ("1e30", {1}),
        ("1000000000000000000000000000000", {1}),  # past 64 bits: a real in SQLite's JSON
        ("12345678901234567890", {2}),
        ("-0", {0}),
        ("0x10", set()),
        ("NaN", set()),
    ],
)
def test_numbers_out_of_range_match_alike_on_both_stores(
    configured: str, engine: Engine, value: str, expected: set[int]
) -> None:
    for i, tags in enumerate(HUGE_TAGS):
        tracking.record(
            provider="openai", model="gpt-4o", input_tokens=1, user_id=f"u{i}", tags=tags
        )
    assert tracking.flush(10)
    f = Filters(
        date.today() - timedelta(days=1), date.today() + timedelta(days=1), tags=(("n", value),)
    )
    found = queries.cost_by(engine, f, "user").table
    assert {int(u[1:]) for u in found["user"]} == expected


TYPED_TAGS = [
    {"demo": True, "n": 1, "plan": "pro"},
    {"demo": False, "n": 1.5, "plan": "1"},
    {"demo": "true", "n": "1", "plan": "True"},
    {"n": 2},
]


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        (("demo", "true"), {0, 2}),  # the boolean and the string
        (("demo", "True"), {0}),  # the boolean; the string "true" is not "True"
        (("demo", "false"), {1}),
        (("demo", "1"), set()),  # a boolean is not the number 1
        (("n", "1"), {0, 2}),  # the number and the string
        (("n", "1.0"), {0}),
        (("n", "1.5"), {1}),
        (("plan", "1"), {1}),
        (("plan", "pro"), {0}),
        (("plan", "True"), {2}),  # a string is matched as typed
        (("missing", "x"), set()),
    ],
)
def test_tag_values_match_as_a_user_means_them(
    configured: str, engine: Engine, tag: tuple[str, str], expected: set[int]
) -> None:
    for i, tags in enumerate(TYPED_TAGS):
        tracking.record(
            provider="openai", model="gpt-4o", input_tokens=1, user_id=f"u{i}", tags=tags
        )
    assert tracking.flush(10)
    f = Filters(date.today() - timedelta(days=1), date.today() + timedelta(days=1), tags=(tag,))
    found = queries.cost_by(engine, f, "user").table
    assert {int(u[1:]) for u in found["user"]} == expected


ODD_KEYS = ["café", "emoji🙂", "k\\b", 'a"b', "a.b", "$", "[0]", "it's", "x' OR '1'='1"]


def test_tag_keys_of_any_text_match_alike_on_both_stores(configured: str, engine: Engine) -> None:
    """Non-ASCII keys, backslashes, quotes, JSON-path and SQL characters: each key finds its
    own call and no other (before, a JSON path missed non-ASCII and backslash keys on SQLite)."""
    for i, key in enumerate(ODD_KEYS):
        tracking.record(
            provider="openai", model="gpt-4o", input_tokens=1, user_id=f"u{i}", tags={key: "v"}
        )
    assert tracking.flush(10)
    today = datetime.now(UTC).date()
    for i, key in enumerate(ODD_KEYS):
        f = Filters(today - timedelta(days=1), today + timedelta(days=1), tags=((key, "v"),))
        found = queries.cost_by(engine, f, "user").table
        assert list(found["user"]) == [f"u{i}"], key
