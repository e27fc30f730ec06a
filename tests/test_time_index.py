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


def track(url: str, tmp_path) -> dict[str, Any]:
    tracking.configure(url=url, journal_path=str(tmp_path / "j.jsonl"), flush_interval=0.05)
    try:
        for i in range(CALLS):
            tracking.record(provider="openai", model="gpt-4o", input_tokens=i, user_id=f"u{i % 9}")
        assert tracking.flush(60)
        time.sleep(0.5)  # cycles after the last write: the writer's last pass
        return tracking.stats()
    finally:
        tracking.shutdown()


@pytest.mark.parametrize("every", [0.05, None], ids=["summarizing", "autovacuum_only"])
def test_the_writer_leaves_no_block_range_for_a_time_range_read_to_scan(
    tmp_path, monkeypatch, every
) -> None:
    """Summarizing every 50 ms here (10 s by default), a future-dated read of the 30,000 calls
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
        assert stats["time_index"] == {"passes": 0, "ranges": 0, "allowed": True}
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
    assert stats["time_index"] == {"passes": 0, "ranges": 0, "allowed": False}
    told = [r for r in caplog.records if "may not summarize" in r.getMessage()]
    assert len(told) == 1
