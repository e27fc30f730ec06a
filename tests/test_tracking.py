"""The public tracking API end to end: record, track, tracked, flush, stats, on both stores."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import func, select

import tracking
from tests.conftest import add_test_prices
from tracking.db import make_engine
from tracking.schema import calls, daily_rollups


def rows(url: str, *columns):
    eng = make_engine(url)
    with eng.connect() as conn:
        result = conn.execute(select(*columns).order_by(calls.c.occurred_at)).all()
    eng.dispose()
    return result


def test_record_is_stored_priced_and_rolled_up(configured: str) -> None:
    add_test_prices(configured)
    with tracking.attribute(user_id="u_42", feature="summarize", team="growth"):
        call_id = tracking.record(
            provider="openai",
            model="gpt-4o",
            input_tokens=1200,
            cache_read_tokens=1000,
            output_tokens=300,
        )
    assert tracking.flush(10)
    (row,) = rows(configured, calls)
    assert row.id == call_id
    assert (row.user_id, row.feature, row.tags) == ("u_42", "summarize", {"team": "growth"})
    # 200 uncached input at $2.50/M + 1000 cached at $1.25/M + 300 output at $10/M
    assert row.cost_usd == Decimal("0.0005") + Decimal("0.00125") + Decimal("0.003")
    assert row.cost_source == "computed" and row.price_version_id is not None
    eng = make_engine(configured)
    with eng.connect() as conn:
        rollup = conn.execute(select(daily_rollups)).one()
    eng.dispose()
    assert (rollup.calls, rollup.user_id, rollup.input_tokens) == (1, "u_42", 1200)
    assert rollup.cost_usd == row.cost_usd


def test_unknown_model_is_unpriced_never_zero(configured: str) -> None:
    tracking.record(provider="openai", model="no-such-model", input_tokens=10, output_tokens=1)
    assert tracking.flush(10)
    (row,) = rows(configured, calls.c.cost_usd, calls.c.cost_source, calls.c.price_version_id)
    assert tuple(row) == (None, None, None)
    eng = make_engine(configured)
    with eng.connect() as conn:
        assert conn.execute(select(daily_rollups.c.unpriced_calls)).scalar_one() == 1
    eng.dispose()


def test_provider_reported_cost_wins(configured: str) -> None:
    add_test_prices(configured)
    tracking.record(provider="openai", model="gpt-4o", input_tokens=10, cost_usd="0.1234")
    assert tracking.flush(10)
    (row,) = rows(configured, calls.c.cost_usd, calls.c.cost_source)
    assert tuple(row) == (Decimal("0.1234"), "provider")


def test_same_call_id_twice_is_one_row(configured: str) -> None:
    add_test_prices(configured)
    call_id = uuid.uuid4()
    when = datetime(2026, 3, 5, 12, tzinfo=UTC)
    for _ in range(2):
        tracking.record(
            provider="openai", model="gpt-4o", input_tokens=100, occurred_at=when, call_id=call_id
        )
        assert tracking.flush(10)
    # recorded again later, with another time: still the same call
    tracking.record(provider="openai", model="gpt-4o", input_tokens=100, call_id=call_id)
    assert tracking.flush(10)
    assert len(rows(configured, calls.c.id)) == 1
    eng = make_engine(configured)
    with eng.connect() as conn:
        assert conn.execute(select(func.sum(daily_rollups.c.calls))).scalar_one() == 1
    eng.dispose()
    assert tracking.stats()["duplicates"] == 2


def test_track_logs_latency_and_reraises_the_host_error(configured: str) -> None:
    class HostError(Exception):
        pass

    raised = HostError("boom")
    whisper = tracking.track(provider="openai", model="whisper-1", operation="transcription")
    with pytest.raises(HostError) as info, whisper as c:
        c.set_usage(audio_seconds=330)
        raise raised
    assert info.value is raised
    with tracking.track(provider="google", model="places-details", operation="lookup") as call:
        call.set_usage(requests=1)
    assert tracking.flush(10)
    found = rows(configured, calls.c.status, calls.c.error_type, calls.c.units, calls.c.duration_ms)
    assert [(r.status, r.error_type, r.units) for r in found] == [
        ("error", "HostError", {"audio_seconds": 330}),
        ("ok", None, {"requests": 1}),
    ]
    assert all(r.duration_ms is not None and r.duration_ms >= 0 for r in found)


def test_tracked_decorator_sync_and_async(configured: str) -> None:
    @tracking.tracked(
        provider="openai",
        model="gpt-4o",
        feature="chat",
        usage=lambda r: {"input_tokens": r[0], "output_tokens": r[1]},
    )
    def sync_call() -> tuple[int, int]:
        return (10, 2)

    @tracking.tracked(provider="anthropic", model="claude-x", feature="chat")
    async def async_call() -> str:
        raise TimeoutError("slow")

    assert sync_call() == (10, 2)
    with pytest.raises(TimeoutError):
        asyncio.run(async_call())
    assert tracking.flush(10)
    found = rows(
        configured, calls.c.provider, calls.c.status, calls.c.input_tokens, calls.c.feature
    )
    assert sorted(tuple(r) for r in found) == [
        ("anthropic", "error", None, "chat"),
        ("openai", "ok", 10, "chat"),
    ]


def test_attribution_across_asyncio_tasks(configured: str) -> None:
    async def handle(user: str) -> None:
        with tracking.attribute(user_id=user, feature="chat"):
            await asyncio.sleep(0.01)
            tracking.record(provider="openai", model="gpt-4o", input_tokens=1, tags={"req": user})

    async def main() -> None:
        with tracking.attribute(feature="outer", plan="pro"):
            await asyncio.gather(*(handle(f"u{i}") for i in range(20)))

    asyncio.run(main())
    assert tracking.flush(10)
    found = rows(configured, calls.c.user_id, calls.c.feature, calls.c.tags)
    assert len(found) == 20
    for r in found:
        assert r.feature == "chat"
        assert r.tags == {"plan": "pro", "req": r.user_id}


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"input_tokens": -1}, "input_tokens"),
        ({"output_tokens": 1.5}, "output_tokens"),
        ({"input_tokens": float("nan")}, "input_tokens"),
        ({"cache_read_tokens": True}, "cache_read_tokens"),
        ({"audio_seconds": float("inf")}, "audio_seconds"),
        ({"model": ""}, "model"),
        ({"tags": {"blob": "x" * 10_000}}, "tags"),
        ({"input_tokens": 10, "cache_read_tokens": 11}, "cache_read_tokens"),
        ({"cost_usd": "-1"}, "cost_usd"),
        ({"occurred_at": datetime(9999, 12, 31, tzinfo=UTC)}, "occurred_at"),
        ({"occurred_at": datetime(2099, 1, 1)}, "occurred_at"),  # the app would open on 2099
        ({"batch": "false"}, "batch"),
        ({"occurred_at": "yesterday"}, "occurred_at"),
        # values the store would refuse, failing every call written with them
        ({"provider": "p" * 65}, "provider"),  # VARCHAR(64)
        ({"operation": "o" * 65}, "operation"),
        ({"environment": "e" * 65}, "environment"),
        ({"model": "m" * 201}, "model"),  # VARCHAR(200)
        ({"request_id": "r" * 201}, "request_id"),
        ({"duration_ms": 2**31}, "duration_ms"),  # INTEGER
        ({"ttft_ms": 3_000_000_000}, "ttft_ms"),
        ({"input_tokens": 2**63}, "input_tokens"),  # BIGINT
        ({"output_tokens": 2**64}, "output_tokens"),
        ({"cost_usd": "100000000000"}, "cost_usd"),  # NUMERIC(20, 9)
        ({"cost_usd": "9223372036.8547758071"}, "cost_usd"),  # BIGINT nano-dollars on SQLite
        ({"tags": {"score": float("nan")}}, "tags"),  # not JSON: PostgreSQL's json refuses it
        ({"tags": {"score": float("inf")}}, "tags"),
        ({"tags": {"note": "bad\ud800"}}, "tags"),  # a lone surrogate: no UTF-8 for it
        ({"tags": {"bad\udfff": 1}}, "tags"),
        ({"tags": {"list": ["a\x00b"]}}, "tags"),  # NUL: PostgreSQL text cannot hold it
        ({"units": {"bad\ud800": 1}}, "units"),
        ({"user_id": "a\x00b"}, "user_id"),
        ({"feature": "bad\ud800"}, "feature"),
        ({"error_type": "\udc80"}, "error_type"),
        ({"requested_model": "gpt\x00"}, "requested_model"),
        ({"call_id": "bad\ud800"}, "call_id"),
    ],
)
def test_bad_input_raises_in_strict_mode_naming_the_field(configured, fields, named) -> None:
    args = {"provider": "openai", "model": "gpt-4o", **fields}
    with pytest.raises(ValueError, match=named):
        tracking.record(**args)


def test_values_at_the_limits_of_their_columns_are_stored_intact(configured) -> None:
    from tracking.events import MAX_COST

    # non-BMP and Hangul text, a backslash before "u": JSON escapes all three like the refused
    tags = {"emoji": "\U0001f600", "hangul": "\ud55c\uad6d\uc5b4", "path": "C:\\udp\\u0000"}
    given = {
        "provider": "p" * 64,
        "model": "m" * 200,
        "operation": "o" * 64,
        "environment": "e" * 64,
        "user_id": "\u00fc" * 200,
        "duration_ms": 2**31 - 1,
        "input_tokens": 2**63 - 1,
        "cost_usd": MAX_COST,
        "tags": tags,
    }
    tracking.record(**given)
    assert tracking.flush(10)
    (row,) = rows(configured, calls)
    assert {name: getattr(row, name) for name in given} == given
    assert tracking.stats()["refused"] == 0


def test_bad_input_is_counted_not_raised_outside_strict(configured, monkeypatch, caplog) -> None:
    monkeypatch.setenv("UNITWISE_STRICT", "0")
    tracking.configure(url=configured, flush_interval=0.05)
    assert tracking.record(provider="openai", model="gpt-4o", input_tokens=-5) is None
    with tracking.track(provider="openai", model="gpt-4o") as call:
        call.set_usage(output_tokens="many")
    assert tracking.flush(10)
    assert tracking.stats()["rejected"] == 2
    assert rows(configured, calls.c.id) == []
    assert "input_tokens must not be negative" in caplog.text


def test_stats_keeps_the_last_few_rejection_reasons_naming_the_field(configured, monkeypatch):
    monkeypatch.setenv("UNITWISE_STRICT", "0")
    tracking.configure(url=configured, flush_interval=0.05)
    tracking.record(provider="openai", model="gpt-4o", input_tokens=-5)
    tracking.record(provider="openai", model="", input_tokens=1)
    tracking.record(provider="openai", model="gpt-4o", tags={"x": float("nan")})
    for n in range(6):
        tracking.record(provider="openai", model="gpt-4o", output_tokens=1.5 + n)
    s = tracking.stats()
    assert s["rejected"] == 9
    recent = s["recent_rejections"]
    assert len(recent) == 5  # the last five, newest last
    assert all(r["field"] == "output_tokens" for r in recent)
    assert recent[-1]["message"] == "output_tokens must be a whole number of tokens, got 6.5"
    tracking.record(provider="openai", model="", input_tokens=1)
    assert tracking.stats()["recent_rejections"][-1] == {
        "field": "model",
        "message": "model must not be empty",
    }


def test_rejections_are_counted_exactly_across_threads(configured, monkeypatch) -> None:
    from tests.conftest import run_together

    monkeypatch.setenv("UNITWISE_STRICT", "0")
    tracking.configure(url=configured, flush_interval=0.05)

    def hammer() -> None:
        for _ in range(2_000):
            tracking.record(provider="openai", model="gpt-4o", input_tokens=-1)

    run_together(hammer)
    assert tracking.stats()["rejected"] == 8_000


def test_a_call_dated_ahead_of_now_is_refused_and_counted(configured, monkeypatch) -> None:
    from datetime import timedelta

    monkeypatch.setenv("UNITWISE_STRICT", "0")
    tracking.configure(url=configured, flush_interval=0.05)
    now = datetime.now(UTC)
    for when in (datetime(2099, 1, 1), now + timedelta(days=2)):
        assert tracking.record(provider="openai", model="gpt-4o", occurred_at=when) is None
    soon = now + timedelta(hours=20)  # a host clock ahead, a time zone mixed up: still taken
    assert tracking.record(provider="openai", model="gpt-4o", occurred_at=soon) is not None
    assert tracking.flush(10)
    s = tracking.stats()
    assert s["rejected"] == 2
    assert s["recent_rejections"][-1]["field"] == "occurred_at"
    assert "more than a day ahead" in s["recent_rejections"][-1]["message"]
    assert len(rows(configured, calls.c.id)) == 1


def test_full_queue_drops_and_counts(store_url, tmp_path) -> None:
    tracking.configure(
        url=store_url,
        queue_size=5,
        batch_size=1000,
        flush_interval=30,
        journal_path=str(tmp_path / "j.jsonl"),
    )
    try:
        ids = [tracking.record(provider="openai", model="gpt-4o", input_tokens=1) for _ in range(8)]
        assert tracking.stats()["dropped"] == 3
        assert tracking.flush(10)
        assert len(rows(store_url, calls.c.id)) == 5
        assert sum(i is not None for i in ids) == 8  # ids are returned; drops are in stats
    finally:
        tracking.shutdown()


def test_kill_switch_turns_tracking_off(store_url, monkeypatch) -> None:
    monkeypatch.setenv("UNITWISE_TRACKING", "off")
    tracking.configure(url=store_url)
    try:
        assert tracking.record(provider="openai", model="gpt-4o", input_tokens=1) is None
        with tracking.track(provider="openai", model="gpt-4o"):
            pass
        assert tracking.flush(1)
        assert tracking.stats()["enabled"] is False
        assert rows(store_url, calls.c.id) == []
    finally:
        monkeypatch.delenv("UNITWISE_TRACKING")
        tracking.configure(url=store_url)
        tracking.shutdown()


@pytest.mark.parametrize(
    ("name", "value"),
    [("DATABASE_URL", "not a url"), ("UNITWISE_QUEUE_SIZE", "100k")],
)
def test_a_bad_environment_turns_tracking_off_without_raising(monkeypatch, caplog, name, value):
    """$DATABASE_URL is often set for the host's own database: a malformed one (or a bad
    setting) must not raise from every call. Tracking goes off, says why once, and stats()
    tells; with UNITWISE_STRICT=1 the first call raises it."""
    tracking.shutdown()
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=name):
        tracking.record(provider="openai", model="gpt-4o", input_tokens=1)
    monkeypatch.setattr("tracking.client._disabled", {"on": False, "error": None})
    monkeypatch.setenv("UNITWISE_STRICT", "0")
    caplog.clear()
    assert tracking.record(provider="openai", model="gpt-4o", input_tokens=1) is None
    with tracking.track(provider="openai", model="gpt-4o"):
        pass
    assert tracking.stats()["enabled"] is False
    assert name in tracking.stats()["error"]
    assert caplog.text.count("tracking is off") == 1


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"batch_size": 0}, "batch_size"),
        ({"queue_size": -1}, "queue_size"),
        ({"flush_interval": -1}, "flush_interval"),
        ({"write_timeout": float("nan")}, "write_timeout"),
        ({"write_connections": 1.5}, "write_connections"),
        ({"batch_sise": 100}, "batch_sise"),
        ({"url": "not a url"}, "url"),
    ],
)
def test_configure_refuses_a_bad_option_naming_it(tmp_path, options, named) -> None:
    """A batch size of 0 would take empty batches forever, a typo would be ignored: the host's
    start-up call says which option is wrong, and the tracker in place stays as it was."""
    with pytest.raises(ValueError, match=named):
        tracking.configure(journal_path=str(tmp_path / "j.jsonl"), **options)


def test_a_call_after_shutdown_goes_to_the_configured_store(store_url, tmp_path) -> None:
    """After shutdown(), a late call (a thread still finishing) starts the writer again with
    the last configure()'s settings, not the environment's default local store."""
    tracking.configure(url=store_url, journal_path=str(tmp_path / "j.jsonl"), flush_interval=0.05)
    tracking.shutdown()
    tracking.record(provider="openai", model="gpt-4o", input_tokens=1, user_id="late")
    try:
        assert tracking.flush(10)
    finally:
        tracking.shutdown()
    assert [r.user_id for r in rows(store_url, calls.c.user_id)] == ["late"]


def test_a_provider_cost_is_kept_to_the_nano_dollar_alike_on_both_stores(configured) -> None:
    """A provider's cost finer than a nano-dollar is rounded half to even when recorded: both
    stores then hold the same amount, and the rollups equal the sum of the calls."""
    from tests.conftest import assert_rollups_equal_the_calls

    for cost in ("0.0000000005", "0.0000000005", "0.0000000015", "0.0000000025"):
        tracking.record(provider="openai", model="gpt-4o", input_tokens=1, cost_usd=cost)
    assert tracking.flush(10)
    stored = sorted(r.cost_usd for r in rows(configured, calls.c.cost_usd))
    assert stored == [Decimal("0"), Decimal("0"), Decimal("0.000000002"), Decimal("0.000000002")]
    engine = make_engine(configured)
    try:
        assert_rollups_equal_the_calls(engine)
    finally:
        engine.dispose()


def test_a_malformed_database_url_is_not_logged_or_shown_with_its_password(
    monkeypatch, caplog
) -> None:
    """A JDBC-style $DATABASE_URL (set for the host's own use) turns tracking off; the error it
    logs and shows in stats()["error"] (which apps put on health pages) names the variable,
    never the URL and its password."""
    tracking.shutdown()
    monkeypatch.setenv("UNITWISE_STRICT", "0")
    monkeypatch.setenv("DATABASE_URL", "jdbc:postgresql://db:5432/app?user=app&password=s3cret")
    assert tracking.record(provider="openai", model="gpt-4o", input_tokens=1) is None
    assert tracking.stats()["enabled"] is False
    assert "s3cret" not in tracking.stats()["error"]
    assert "s3cret" not in caplog.text


def test_batch_none_means_not_a_batch_as_before(tmp_path) -> None:
    """Every optional field takes None as "not given": ``batch=None`` is not a batch."""
    tracking.configure(
        url=f"sqlite:///{tmp_path}/s.db",
        journal_path=str(tmp_path / "j.jsonl"),
        flush_interval=0.05,
    )
    try:
        assert tracking.record(provider="openai", model="gpt-4o", input_tokens=1, batch=None)
    finally:
        tracking.shutdown(5)


def test_shutdown_timeout_zero_is_still_a_setting(tmp_path) -> None:
    """``shutdown_timeout=0`` means never delay the host's exit (what is queued is journaled)."""
    tracking.configure(
        url=f"sqlite:///{tmp_path}/s.db", journal_path=str(tmp_path / "j.jsonl"), shutdown_timeout=0
    )
    tracking.shutdown(1)


def test_import_tracking_loads_no_heavy_module_beyond_what_sqlalchemy_loads() -> None:
    """The host pays for sqlalchemy and our own code at import, nothing more: not the PostgreSQL
    dialect (an SQLite host never needs it; a PostgreSQL one loads it with its first engine),
    no asyncio of our own (sqlalchemy 2.1 imports asyncio itself), no numpy, pandas, streamlit."""
    from bench.import_time import LOADED

    import_sqlalchemy = "import sys, json, sqlalchemy; print(json.dumps(sorted(sys.modules)))"
    by_sqlalchemy = set(json.loads(python(import_sqlalchemy)))
    added = json.loads(python(LOADED))
    forbidden = ("asyncio", "sqlalchemy.connectors.asyncio", "sqlalchemy.dialects.postgresql")
    forbidden += ("psycopg2", "numpy", "pandas", "streamlit")
    loaded = [m for m in added for f in forbidden if m == f or m.startswith(f + ".")]
    assert loaded == [], loaded
    assert "tracking.client" in added  # the probe did import tracking
    # the writer and its parts load at configure() or the first call, not at import
    assert not [m for m in added if m in ("tracking.writer", "tracking.sink", "tracking.journal")]
    if "asyncio" not in by_sqlalchemy:  # a sqlalchemy without it: then none of ours either
        assert not [m for m in added if m.startswith("asyncio")]


def test_configure_loads_the_writer_that_import_left_out(tmp_path) -> None:
    loaded = python(
        "import sys, tracking; before = 'tracking.writer' in sys.modules;"
        f"tracking.configure(url='sqlite:///{tmp_path / 'w.db'}', journal_path='{tmp_path / 'j'}');"
        "tracking.record(provider='openai', model='gpt-4o', input_tokens=1);"
        "print(before, 'tracking.writer' in sys.modules, tracking.flush(20))"
    )
    assert loaded.split() == ["False", "True", "True"]


def python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return done.stdout


def test_postgresql_ddl_from_the_metadata_keeps_the_postgresql_options() -> None:
    """They are set when DDL is first made for PostgreSQL, not at import (see schema)."""
    ddl = python(
        "import sys, tracking.schema as s; from sqlalchemy import create_mock_engine;"
        "assert 'sqlalchemy.dialects.postgresql' not in sys.modules;"
        "e = create_mock_engine('postgresql+psycopg2://', lambda sql, *a, **k: print(sql.compile("
        "dialect=e.dialect), ';'));"
        "s.metadata.create_all(e, checkfirst=False)"
    )
    assert "PARTITION BY RANGE (occurred_at)" in ddl
    assert "ON calls USING brin (occurred_at)" in ddl
    assert (
        "INCLUDE (calls, error_calls, unpriced_calls, input_tokens, output_tokens, cost_usd)" in ddl
    )
