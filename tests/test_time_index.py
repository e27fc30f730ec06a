"""The writer summarizes the calls' BRIN time index as it writes (PostgreSQL): a page's read of
a time range then skips every block range outside it, instead of reading every row added since
autovacuum last summarized (tracking/time_index.py)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import text

import tracking
import tracking.time_index
from tests.conftest import new_pg_database
from tracking.db import make_engine
from tracking.migrate import upgrade
from tracking.partitions import ensure_months, month_of, next_month, partition_name

pytestmark = pytest.mark.postgres
CALLS = 30_000
IDLE = {"passes": 0, "ranges": 0, "skipped": 0, "cut": 0, "allowed": True}


def heap_blocks_read_for_future_calls(url: str) -> int:
    """The pages read by a future-dated count of this month's calls through the time index
    (the Overview's check): none once every block range is summarized."""
    from datetime import UTC, datetime

    partition = partition_name(month_of(datetime.now(UTC)))
    eng = make_engine(url)
    with eng.begin() as conn:
        conn.execute(text("SET LOCAL enable_seqscan = off"))
        conn.execute(text("SET LOCAL max_parallel_workers_per_gather = 0"))
        plan = conn.execute(
            text(
                "EXPLAIN (ANALYZE, FORMAT JSON) SELECT count(*) FROM calls"
                " WHERE occurred_at > now() + interval '1 day'"
            )
        ).scalar_one()
    eng.dispose()

    def blocks(node: dict[str, Any]) -> int:
        own = 0
        if node.get("Relation Name") == partition:
            own = node.get("Exact Heap Blocks", 0) + node.get("Lossy Heap Blocks", 0)
        return own + sum(blocks(child) for child in node.get("Plans", []))

    return blocks(plan[0]["Plan"])


def track(url: str, tmp_path, at: Any = None) -> dict[str, Any]:
    tracking.configure(url=url, journal_path=str(tmp_path / "j.jsonl"), flush_interval=0.05)
    try:
        for i in range(CALLS):
            tracking.record(
                provider="openai",
                model="gpt-4o",
                input_tokens=i,
                user_id=f"u{i % 9}",
                occurred_at=at,
            )
        assert tracking.flush(60)
        time.sleep(0.5)  # cycles after the last write: the writer's last pass
        return tracking.stats()
    finally:
        tracking.shutdown()


@pytest.mark.parametrize("every", [0.05, None], ids=["summarizing", "autovacuum_only"])
def test_the_writer_leaves_no_block_range_for_a_time_range_read_to_scan(
    tmp_path, monkeypatch, every
) -> None:
    """Summarizing every 50 ms here (1 s by default), a future-dated read of the 30,000 calls
    just written reads no page; without the writer's passes, every page of them (autovacuum's
    next visit is up to a minute away)."""
    monkeypatch.setattr(tracking.time_index, "SUMMARIZE_EVERY", every or 1e9)
    with new_pg_database("unitwise_time_index") as url:
        upgrade(make_engine(url))
        stats = track(url, tmp_path)
        read = heap_blocks_read_for_future_calls(url)
    assert stats["written"] == CALLS
    if every:
        assert stats["time_index"]["passes"] >= 1 and stats["time_index"]["ranges"] >= 1, stats
        assert read == 0
    else:
        assert stats["time_index"] == IDLE
        assert read > 100  # the rows' pages: every one read and rechecked


def test_a_role_that_does_not_own_the_calls_is_told_once_and_its_calls_are_stored(
    tmp_path, monkeypatch, caplog
) -> None:
    """The summary needs the table's owner: a writer role that only inserts stores every call,
    stops trying after the first refusal, and says so once."""
    import logging
    from datetime import UTC, datetime

    monkeypatch.setattr(tracking.time_index, "SUMMARIZE_EVERY", 0.05)
    caplog.set_level(logging.INFO, logger="unitwise")
    with new_pg_database("unitwise_time_index_role") as url:
        eng = make_engine(url)
        upgrade(eng)
        role = "unitwise_test_inserter"
        with eng.begin() as conn:
            this = month_of(datetime.now(UTC))  # made by the owner: the role cannot
            ensure_months(conn, [this, next_month(this)])
            conn.execute(text(f"DROP ROLE IF EXISTS {role}"))
            conn.execute(text(f"CREATE ROLE {role} LOGIN"))
            conn.execute(text(f"GRANT USAGE ON SCHEMA public TO {role}"))
            conn.execute(
                text(f"GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO {role}")
            )
            conn.execute(text(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {role}"))
        from sqlalchemy.engine import make_url

        as_role = make_url(url).set(username=role).render_as_string(hide_password=False)
        try:
            stats = track(as_role, tmp_path)
        finally:
            with eng.begin() as conn:
                conn.execute(text(f"DROP OWNED BY {role}"))
                conn.execute(text(f"DROP ROLE {role}"))
            eng.dispose()
    assert stats["written"] == CALLS and stats["dropped"] == 0 and stats["write_failures"] == 0
    assert stats["time_index"] == {**IDLE, "allowed": False}
    told = [r for r in caplog.records if "may not summarize" in r.getMessage()]
    assert len(told) == 1


def test_a_locked_index_is_left_for_the_next_pass_and_the_calls_flow(tmp_path, monkeypatch) -> None:
    """Autovacuum (here: a session holding the lock it takes) on the partition: each pass waits
    LOCK_TIMEOUT at most and is counted as skipped; every call is stored meanwhile."""
    from datetime import UTC, datetime

    monkeypatch.setattr(tracking.time_index, "SUMMARIZE_EVERY", 0.05)
    with new_pg_database("unitwise_time_index_lock") as url:
        eng = make_engine(url)
        upgrade(eng)
        this = month_of(datetime.now(UTC))
        with eng.begin() as conn:
            ensure_months(conn, [this, next_month(this)])
        holder = eng.connect()
        holder.execute(text(f"LOCK TABLE {partition_name(this)} IN SHARE UPDATE EXCLUSIVE MODE"))
        try:
            stats = track(url, tmp_path)
        finally:
            holder.rollback()
            holder.close()
            eng.dispose()
    assert stats["written"] == CALLS and stats["write_failures"] == 0
    assert stats["time_index"]["passes"] == 0 and stats["time_index"]["skipped"] >= 1, stats


TIMEOUTS = ("lock_timeout", "statement_timeout")


def test_a_pass_sets_its_bounds_for_itself_only() -> None:
    """The timeouts are the pass's own transaction's: the pooled connection's next user gets
    the server's defaults back."""
    from tracking.time_index import summarize_new_ranges

    with new_pg_database("unitwise_time_index_bounds") as url:
        eng = make_engine(url, pool_size=1)
        upgrade(eng)
        try:
            with eng.begin() as conn:
                summarize_new_ranges(conn)
                inside = [conn.execute(text(f"SHOW {n}")).scalar_one() for n in TIMEOUTS]
            with eng.connect() as conn:
                after = [conn.execute(text(f"SHOW {n}")).scalar_one() for n in TIMEOUTS]
        finally:
            eng.dispose()
    assert inside == [tracking.time_index.LOCK_TIMEOUT, tracking.time_index.STATEMENT_TIMEOUT]
    assert after == ["0", "0"]


def test_last_months_partition_is_summarized_too(tmp_path, monkeypatch) -> None:
    """Calls dated last month (late, or written just before the turn) are summarized by the
    writer's passes as this month's are."""
    from datetime import UTC, datetime, timedelta

    from tracking.time_index import summarize_new_ranges

    monkeypatch.setattr(tracking.time_index, "SUMMARIZE_EVERY", 1e9)  # no pass of the writer's
    first = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    with new_pg_database("unitwise_time_index_last") as url:
        eng = make_engine(url)
        upgrade(eng)
        try:
            track(url, tmp_path, at=first - timedelta(hours=1))
            with eng.begin() as conn:
                ranges = summarize_new_ranges(conn)
        finally:
            eng.dispose()
    assert ranges >= 1


class _Refusal(Exception):
    def __init__(self, pgcode: str) -> None:
        self.pgcode = pgcode


def test_a_pass_that_did_not_finish_is_tried_again_with_nothing_new_written(monkeypatch) -> None:
    """A pass cut short or locked out is retried at the next turn even when the writer has
    written nothing since (it may be idle for good); a whole pass is not repeated."""
    from sqlalchemy.exc import DBAPIError

    from tracking.ratelog import RateLimitedLog
    from tracking.time_index import TimeIndexSummarizer

    monkeypatch.setattr(tracking.time_index, "SUMMARIZE_EVERY", 0.0)
    answers: list[Any] = ["57014", "55P03", 3]

    def summarize() -> int:
        answer = answers.pop(0)
        if isinstance(answer, str):
            raise DBAPIError("SELECT brin_summarize_new_values(...)", {}, _Refusal(answer))
        return answer

    summarizer = TimeIndexSummarizer(summarize, RateLimitedLog())
    for _ in range(4):
        summarizer.run_if_due(written=10)
    assert summarizer.stats() == {**IDLE, "passes": 1, "ranges": 3, "skipped": 1, "cut": 1}
    assert answers == []
