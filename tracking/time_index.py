"""The writer summarizes the calls' BRIN time index as it fills it (PostgreSQL).

A BRIN index rules out only the block ranges it has summarized: every query on a time range
(the pages' future-dated check and "yesterday so far") reads all the pages added since. With
``autosummarize`` (migration 0007) autovacuum summarizes each filled range on its next visit,
within a minute; a writer ingesting 38,000 calls/s adds 2M rows in that minute, and those reads
took 300-400 ms on every render (bench/README.md, "readers"). So the writer, which knows when it
has added rows, summarizes this month's partition itself every ``SUMMARIZE_EVERY`` seconds: one
pass over the rows added since, instead of one per page render. Every second, not every ten:
what a pass has not summarized yet is still read by every such query (at 10 s, the Overview's
future-dated check took 45 ms and "yesterday so far" 130 ms while the writer ingested; at 1 s,
15 and 72 ms), and a pass over a second of calls holds the writer's next batch 20-25 ms instead
of 185-250 ms, for about the same time summarizing in all (bench/README.md, "readers").

The host's calls never wait on it (they queue); the writer's next batch waits for a pass,
which is bounded: a lock held by someone else (autovacuum, another writer doing the same) is
waited for ``LOCK_TIMEOUT`` at most, then left for the next turn (20 ms: while autovacuum holds
it for minutes, the writer loses 2% of its time to passes that wait for it), and a pass ends
after ``STATEMENT_TIMEOUT`` (a pass cut short keeps the ranges it summarized: the next goes on
from there). A role that may not summarize (the function needs the table's owner) is told
once, and autovacuum is left to it. The previous month's partition is summarized too: its last
block range, never filled, is one autosummarize would never queue, and late calls still land
there.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from tracking.partitions import month_of, partition_name, previous_month
from tracking.ratelog import RateLimitedLog

log = logging.getLogger("unitwise")

SUMMARIZE_EVERY = 1.0  # seconds between passes while the writer writes
LOCK_TIMEOUT = "20ms"  # the longest a pass waits for a lock someone else holds
STATEMENT_TIMEOUT = "250ms"  # the longest a pass holds up the writer's next batch
TIME_INDEX = "ix_calls_occurred_at"  # the partitioned index (tracking.schema, migration 0007)
_NOT_OWNER = "42501"  # insufficient_privilege
_LOCK_NOT_AVAILABLE = "55P03"
_CANCELED = "57014"  # query_canceled: the statement timeout

_SET_TIMEOUTS = text(  # SET LOCAL both
    "SELECT set_config('lock_timeout', CAST(:lock AS text), true),"
    " set_config('statement_timeout', CAST(:statement AS text), true)"
)
# the partition's own index attached to the parent index (a name could have been changed)
_SUMMARIZE = text(
    "SELECT coalesce(sum(brin_summarize_new_values(x.indexrelid::regclass)), 0)"
    " FROM pg_index x JOIN pg_inherits i ON i.inhrelid = x.indexrelid"
    " WHERE x.indrelid IN (to_regclass(CAST(:this AS text)), to_regclass(CAST(:last AS text)))"
    " AND i.inhparent = to_regclass(CAST(:parent AS text))"
)


def summarize_new_ranges(conn: Connection, now: datetime | None = None) -> int:
    """Summarize the block ranges of this month's and last month's partitions not yet
    summarized; returns how many. Raises the store's error (a lock not granted within
    ``LOCK_TIMEOUT``, a pass cut at ``STATEMENT_TIMEOUT``)."""
    this = month_of(now or datetime.now(UTC))
    conn.execute(_SET_TIMEOUTS, {"lock": LOCK_TIMEOUT, "statement": STATEMENT_TIMEOUT})
    names = {"this": partition_name(this), "last": partition_name(previous_month(this))}
    return int(conn.execute(_SUMMARIZE, {**names, "parent": TIME_INDEX}).scalar_one())


class TimeIndexSummarizer:
    """Runs ``summarize`` at most once every ``SUMMARIZE_EVERY`` seconds while there is
    something new to summarize: calls written since the last whole pass, or a pass that did not
    finish (its lock not granted, cut short, failed); after a refusal for want of ownership,
    never again here."""

    def __init__(self, summarize: Callable[[], int], logs: RateLimitedLog) -> None:
        self._summarize = summarize
        self._logs = logs
        self._last = time.monotonic()
        self._written = 0  # the writer's count of calls written before the last whole pass
        self.allowed = True
        self.passes = 0  # whole passes
        self.ranges = 0  # block ranges the whole passes summarized
        self.skipped = 0  # passes whose lock was not granted within LOCK_TIMEOUT
        self.cut = 0  # passes ended by STATEMENT_TIMEOUT (what they summarized is kept)

    def run_if_due(self, written: int) -> None:
        """``written``: the writer's count of calls written so far."""
        if not self.allowed or written == self._written:
            return
        if time.monotonic() - self._last < SUMMARIZE_EVERY:
            return
        self._last = time.monotonic()
        try:
            self.ranges += self._summarize()
        except DBAPIError as exc:
            code = getattr(exc.orig, "pgcode", None)
            if code == _NOT_OWNER:
                self.allowed = False
                log.info(
                    "unitwise: this role may not summarize the calls' time index (it needs"
                    " the table's owner); autovacuum will, within autovacuum_naptime"
                )
            elif code == _LOCK_NOT_AVAILABLE:
                self.skipped += 1
            elif code == _CANCELED:
                self.cut += 1
            else:
                self._logs.warning(
                    "summarize", "unitwise: could not summarize %s: %s", TIME_INDEX, exc
                )
            return
        except Exception as exc:  # never the calls' concern: the next pass tries again
            self._logs.warning("summarize", "unitwise: could not summarize %s: %s", TIME_INDEX, exc)
            return
        self.passes += 1
        self._written = written

    def stats(self) -> dict[str, int | bool]:
        """For ``tracking.stats()``: whole passes, block ranges they summarized, passes skipped
        for a lock and cut short by the timeout, still allowed."""
        return {
            "passes": self.passes,
            "ranges": self.ranges,
            "skipped": self.skipped,
            "cut": self.cut,
            "allowed": self.allowed,
        }
