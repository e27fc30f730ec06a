"""One call the store cannot hold (too long, too large, NUL, a lone surrogate, NaN in tags), end
to end through the public API: refused at the call or set aside by the writer, it never stops
the calls after it from reaching the store."""

from __future__ import annotations

import contextlib

import pytest
from sqlalchemy import func, select

import tracking
from tests.test_writer import empty_pg_store, wait_for
from tracking.db import make_engine
from tracking.schema import calls


def stored_users(url: str, user: str) -> int:
    eng = make_engine(url)
    with eng.connect() as conn:
        n = conn.execute(
            select(func.count()).select_from(calls).where(calls.c.user_id == user)
        ).scalar_one()
    eng.dispose()
    return n


POISON_BOTH = {
    "huge_token_count": {"input_tokens": 2**63},  # passes count(), overflows BIGINT / SQLite int
    "lone_surrogate": {"feature": "bad\ud800"},  # passes _name(), cannot be encoded as UTF-8
}
POISON_PG = {
    "long_provider": {"provider": "p" * 65},  # _name allows 200, calls.provider is VARCHAR(64)
    "duration_in_ns": {"duration_ms": 3_000_000_000},  # calls.duration_ms is INTEGER
    "nan_in_tags": {"tags": {"score": float("nan")}},  # json.dumps writes NaN, PG json refuses
    "nul_in_user": {"user_id": "a\x00b"},  # PostgreSQL text cannot hold NUL
}


def _one_bad_call_then_good_ones(url: str, tmp_path, bad: dict) -> None:
    tracking.configure(url=url, journal_path=str(tmp_path / "j.jsonl"), flush_interval=0.05)
    try:
        fields = {"provider": "openai", "model": "gpt-4o", "user_id": "bad", **bad}
        with contextlib.suppress(ValueError):  # either refused here or accepted
            tracking.record(**fields)
        for _ in range(50):
            tracking.record(provider="openai", model="gpt-4o", input_tokens=1, user_id="good")
        tracking.flush(5)
        # the 50 good calls must reach the store; on main the whole batch goes to the journal
        # and every replay fails on the one bad call, so nothing is ever written again
        assert wait_for(lambda: stored_users(url, "good") == 50, 8), tracking.stats()
        for _ in range(10):
            tracking.record(provider="openai", model="gpt-4o", input_tokens=1, user_id="later")
        assert wait_for(lambda: stored_users(url, "later") == 10, 8), tracking.stats()
    finally:
        tracking.shutdown()


@pytest.mark.parametrize("bad", list(POISON_BOTH.values()), ids=list(POISON_BOTH))
def test_one_call_the_store_refuses_does_not_block_every_later_call(
    store_url, tmp_path, bad
) -> None:
    _one_bad_call_then_good_ones(store_url, tmp_path, bad)


@pytest.mark.postgres
@pytest.mark.parametrize("bad", list(POISON_PG.values()), ids=list(POISON_PG))
def test_one_call_postgres_refuses_does_not_block_every_later_call(pg_url, tmp_path, bad) -> None:
    empty_pg_store(pg_url)
    _one_bad_call_then_good_ones(pg_url, tmp_path, bad)
