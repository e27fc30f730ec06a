"""Where the calls the store did not take go: the journal (to be replayed) and, for the calls it
refused, the refused file beside it. Counted, and logged at most once a minute (also the calls
lost when neither file can be written: a full or read-only disk)."""

from __future__ import annotations

from tracking.counters import Counters
from tracking.events import CallEvent
from tracking.journal import Journal
from tracking.ratelog import RateLimitedLog


class Undelivered:
    def __init__(self, journal: Journal, counters: Counters, logs: RateLimitedLog) -> None:
        self.journal = journal
        self.counters = counters
        self.logs = logs

    def spill(self, batch: list[CallEvent]) -> None:
        """To the journal (fsync'd); a journal that cannot be written loses them (counted)."""
        try:
            self.journal.append(batch)  # flock'd: two delivery threads may spill at once
            self.counters.add("spilled", len(batch))
        except OSError as exc:
            self.lost(len(batch))
            self.logs.error(
                "journal-lost",
                "unitwise: journal %s failed, %d call(s) lost: %s",
                self.journal.path,
                len(batch),
                exc,
            )

    def lost(self, n: int) -> None:
        """Calls no file could keep: counted among the dropped and on their own."""
        self.counters.add("dropped", n)
        self.counters.add("journal_lost", n)

    def set_aside(self, refused: list[tuple[CallEvent, str]]) -> None:
        """Calls the store refused to the refused file beside the journal (counted, logged)."""
        if not refused:
            return
        try:
            self.journal.set_aside(refused)
        except OSError as exc:
            self.lost(len(refused))
            path, n = self.journal.refused_path, len(refused)
            self.logs.error(
                "refused-lost", "unitwise: %s failed, %d refused call(s) lost: %s", path, n, exc
            )
            return
        self.counters.add("refused", len(refused))
        self.logs.warning(
            "refused",
            "unitwise: the store refused %d call(s), set aside in %s: %s",
            len(refused),
            self.journal.refused_path,
            refused[-1][1],
        )
