"""Demo data: deterministic, shaped like real traffic, priced exactly as tracking prices calls."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import numpy as np
import pandas as pd
from sqlalchemy import Engine, func, select

from dashboard import demo
from tracking.pg_copy import COPY_COLUMNS, copy_text
from tracking.pricing import PriceBook, PriceVersion, Rate
from tracking.schema import calls, daily_rollups
from tracking.sqltypes import from_nanos

END = datetime(2026, 11, 20, 15, tzinfo=UTC)


def all_calls(n: int = 20_000, days: int = 28, seed: int = 5) -> pd.DataFrame:
    return pd.concat([f for f, _ in demo.frames(n, days, seed, END)], ignore_index=True)


def test_the_same_seed_gives_the_same_calls_and_another_seed_others() -> None:
    a, b, c = all_calls(seed=5), all_calls(seed=5), all_calls(seed=6)
    pd.testing.assert_frame_equal(a, b)
    assert len(a) == 20_000
    assert not set(a["id"]) & set(c["id"])


def test_traffic_has_heavy_users_weekends_growth_a_spike_errors_and_cache_hits() -> None:
    frame = all_calls(50_000, days=56)
    per_user = frame["user_ix"].value_counts()
    assert per_user.iloc[0] > 20 * per_user.median()  # heavy-tailed
    day = frame["occurred_at"].dt.floor("D")
    daily = frame.groupby(day).size()
    weekend = daily[daily.index.day_of_week >= 5].median()
    assert weekend < 0.75 * daily[daily.index.day_of_week < 5].median()
    assert daily.iloc[-14:].median() > 1.3 * daily.iloc[:14].median()  # growth
    assert daily.max() > 2.5 * daily.median()  # the spike day
    assert 0.01 < frame["failed"].mean() < 0.05
    chat = frame["output_tokens"].notna()
    assert 0.25 < (frame.loc[chat, "cache_read_tokens"] > 0).mean() < 0.45
    hours = frame["occurred_at"].dt.hour.value_counts()
    assert hours[14] > 5 * hours.get(3, 0)  # afternoons, not nights
    features = {demo.FEATURES[i].name for i in frame["feature_ix"].unique()}
    assert features == {"chat", "summarize", "search", "transcribe", "speech", "embeddings"}


def _version(vid: int, provider: str, model: str, rates: dict) -> PriceVersion:
    v = PriceVersion(vid, provider, model, datetime(2024, 1, 1, tzinfo=UTC))
    for unit, tiers in rates.items():
        v.rates[(unit, "standard")] = sorted(
            (Rate(Decimal(r), per, above) for r, per, above in tiers),
            key=lambda t: t.tier_above,
            reverse=True,
        )
    return v


def test_column_wise_pricing_equals_the_cost_engine_call_by_call() -> None:
    m = 1_000_000
    book = PriceBook(
        [  # cache read priced on its own; a long-context tier; odd rates that need rounding
            _version(1, "openai", "gpt-4o", {"input_tokens": [("2.5", m, 0)],
                     "cache_read_tokens": [("1.25", m, 0)], "output_tokens": [("10", m, 0)]}),
            _version(2, "anthropic", "claude-3-5-sonnet-20241022", {
                "input_tokens": [("3", m, 0), ("6", m, 1500)],
                "cache_read_tokens": [("0.3", m, 0)], "cache_write_tokens": [("3.75", m, 0)],
                "output_tokens": [("15", m, 0), ("22.5", m, 1500)]}),
            # cache parts without a rate of their own stay in input
            _version(3, "google", "gemini-1.5-flash", {"input_tokens": [("0.075", m, 0)],
                     "output_tokens": [("0.3", m, 0)]}),
            _version(4, "openai", "whisper-1", {"audio_seconds": [("0.006", 60, 0)]}),
            _version(5, "openai", "tts-1", {"characters": [("15", m, 0)]}),
            _version(6, "openai", "text-embedding-3-small", {"input_tokens": [("0.02", m, 0)]}),
            # claude-3-5-haiku has no price: unpriced, never $0
        ]
    )  # fmt: skip
    frame = all_calls(5_000)
    nanos, versions = demo.price_frame(book, frame)
    checked = {"unpriced": 0, "priced": 0}
    for i, event in enumerate(demo.events(frame)):
        quote = book.quote(event.provider, event.model, event.occurred_at, event.usage())
        got = None if nanos[i] < 0 else from_nanos(int(nanos[i]))
        assert got == quote.cost, (event, got, quote)
        assert (None if versions[i] < 0 else int(versions[i])) == quote.version_id
        checked["unpriced" if quote.cost is None else "priced"] += 1
    assert checked["unpriced"] > 100 and checked["priced"] > 3_000


def test_load_writes_priced_calls_and_their_rollups_once(engine: Engine, store_url: str) -> None:
    from tests.conftest import add_test_prices, assert_rollups_equal_the_calls

    add_test_prices(store_url)
    seen: list[tuple[int, int]] = []
    assert (
        demo.load(engine, 4_000, 10, 1, progress=lambda d, t: seen.append((d, t)), end=END) == 4_000
    )
    assert seen[-1] == (4_000, 4_000)
    with engine.connect() as conn:
        raw = conn.execute(select(func.count(), func.sum(calls.c.cost_usd))).one()
        rolled = conn.execute(
            select(func.sum(daily_rollups.c.calls), func.sum(daily_rollups.c.cost_usd))
        ).one()
        gpt = conn.execute(
            select(func.count()).where(calls.c.model == "gpt-4o", calls.c.cost_usd.is_not(None))
        ).scalar_one()
    assert raw[0] == rolled[0] == 4_000
    assert raw[1] == rolled[1] > 0
    assert gpt > 0
    assert_rollups_equal_the_calls(engine)  # every rollup, on SQLite's path and PostgreSQL's
    # the same seed and end again: the same ids, so nothing new
    assert demo.load(engine, 4_000, 10, 1, end=END) == 0


def test_copy_text_is_the_writers_copy_text_of_the_same_events() -> None:
    frame, pop = next(demo.frames(3_000, 5, 2, END))
    nanos = np.where(np.arange(len(frame)) % 2 == 0, 1_234_567_891, -1)
    nanos[1::4] = np.arange(len(nanos[1::4])) % 2_000  # small costs: Decimal writes 1.5E-8
    versions = np.where(nanos >= 0, 9, -1)
    text = demo.copy_text(frame, pop, nanos, versions)
    assert text == copy_text(demo.events(frame, pop, nanos, versions))
    lines = text.splitlines()
    assert len(lines) == len(frame)
    row = dict(zip(COPY_COLUMNS, lines[0].split("\t"), strict=True))
    assert row["cost_usd"] == "1.234567891" and row["price_version_id"] == "9"
    assert row["tags"].startswith('{"plan":')


def test_cli_loads_once_with_if_empty(tmp_path, capsys) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    assert demo.main(["--url", url, "--calls", "300", "--days", "5", "--if-empty"]) == 0
    assert "Loaded 300 demo calls over 5 days" in capsys.readouterr().out
    assert demo.main(["--url", url, "--calls", "300", "--days", "5", "--if-empty"]) == 0
    assert "already has calls: no demo data loaded" in capsys.readouterr().out
