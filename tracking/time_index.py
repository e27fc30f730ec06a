"""The writer summarizes the calls' BRIN time index as it fills it (PostgreSQL).

A BRIN index rules out only the block ranges it has summarized: every query on a time range
(the pages' future-dated check and "yesterday so far") reads all the pages added since. With
``autosummarize`` (migration 0007) autovacuum summarizes each filled range on its next visit,
within a minute; a writer ingesting 38,000 calls/s adds 2M rows in that minute, and those reads
took 300-400 ms on every render (bench/README.md, "readers"). So the writer, which knows when it
has added rows, summarizes this month's partition itself every ``SUMMARIZE_EVERY`` seconds: one
pass over the rows added since, instead of one per page render.

It never holds up the calls: a lock held by someone else (autovacuum, another writer doing the
same) is waited for 100 ms at most, then left for the next turn; a role that may not summarize
(the function needs the table's owner) is told once, and autovacuum is left to it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from tracking.partitions import month_of, partition_name
from tracking.ratelog import RateLimitedLog

log = logging.getLogger("unitwise")

SUMMARIZE_EVERY = 10.0  # seconds between passes while the writer writes
TIME_INDEX = "ix_calls_occurred_at"  # the partitioned index (tracking.schema, migration 0007)
_NOT_OWNER = "42501"  # insufficient_privilege
_LOCK_NOT_AVAILABLE = "55P03"

_SET_LOCK_TIMEOUT = text("SELECT set_config('lock_timeout', '100ms', true)")  # SET LOCAL
# the partition's own index attached to the parent index (a name could have been changed)
_SUMMARIZE = text(
    "SELECT coalesce(sum(brin_summarize_new_values(x.indexrelid::regclass)), 0)"
    " FROM pg_index x JOIN pg_inherits i ON i.inhrelid = x.indexrelid"
    " WHERE x.indrelid = to_regclass(CAST(:partition AS text))"
    " AND i.inhparent = to_regclass(CAST(:parent AS text))"
)


def summarize_new_ranges(conn: Connection, now: datetime | None = None) -> int:
    """Summarize the block ranges of this month's partition not yet summarized; returns how
    many. Raises the store's error (a lock not granted within 100 ms among them)."""
    partition = partition_name(month_of(now or datetime.now(UTC)))
    conn.execute(_SET_LOCK_TIMEOUT)
    return int(
        conn.execute(_SUMMARIZE, {"partition": partition, "parent": TIME_INDEX}).scalar_one()
    )


class TimeIndexSummarizer:
    """Runs ``summarize`` at most once every ``SUMMARIZE_EVERY`` seconds, when the writer has
    written since the last pass; after a refusal for want of ownership, never again here."""

    def __init__(self, summarize: Callable[[], int], logs: RateLimitedLog) -> None:
        self._summarize = summarize
        self._logs = logs
        self._last = time.monotonic()
        self._written = 0  # the writer's count of calls written at the last pass
        self.allowed = True
        self.passes = 0
        self.ranges = 0

    def run_if_due(self, written: int) -> None:
        """``written``: the writer's count of calls written so far."""
        if not self.allowed or written == self._written:
            return
        if time.monotonic() - self._last < SUMMARIZE_EVERY:
            return
        self._last, self._written = time.monotonic(), written
        try:
            self.ranges += self._summarize()
            self.passes += 1
        except DBAPIError as exc:
            code = getattr(exc.orig, "pgcode", None)
            if code == _NOT_OWNER:
                self.allowed = False
                log.info(
                    "unitwise: this role may not summarize the calls' time index (it needs"
                    " the table's owner); autovacuum will, within autovacuum_naptime"
                )
            elif code != _LOCK_NOT_AVAILABLE:
                self._logs.warning(
                    "summarize", "unitwise: could not summarize %s: %s", TIME_INDEX, exc
                )
        except Exception as exc:  # never the calls' concern: the next pass tries again
            self._logs.warning("summarize", "unitwise: could not summarize %s: %s", TIME_INDEX, exc)

    def stats(self) -> dict[str, int | bool]:
        """For ``tracking.stats()``: passes made, block ranges summarized, still allowed."""
        return {"passes": self.passes, "ranges": self.ranges, "allowed": self.allowed}
