"""Counters of what happened to calls, shared by host threads and the writer's threads."""

from __future__ import annotations

import threading
from collections.abc import Iterable


class Counters:
    """Named counts, each added to under one lock: ``+=`` on a shared dict item is not atomic,
    and host threads, the writer thread and its delivery lanes all count at once."""

    def __init__(self, names: Iterable[str]) -> None:
        self._counts = dict.fromkeys(names, 0)
        self._lock = threading.Lock()

    def add(self, name: str, n: int = 1) -> None:
        """Add ``n`` to a known count (an unknown name is a bug: KeyError)."""
        with self._lock:
            self._counts[name] += n

    def __getitem__(self, name: str) -> int:
        return self._counts[name]

    def after_fork(self) -> None:
        """A new lock in a forked child: a thread of the parent may have held the old one at
        the fork, and no thread of the child would ever release it."""
        self._lock = threading.Lock()

    def snapshot(self) -> dict[str, int]:
        """Every count as of one moment (read under the lock, so the counts agree)."""
        with self._lock:
            return dict(self._counts)


# what the writer counts (stats() shows them; the tracker adds its own to the same Counters)
WRITER_COUNTS = (
    "enqueued",
    "written",
    "duplicates",
    "spilled",
    "replayed",
    "dropped",  # calls lost: a full queue, or a journal that could not be written
    "journal_lost",  # of those, the calls the journal (or refused file) could not keep
    "write_failures",
    "refused",
    "timeouts",  # store operations the watchdog ended (a store that went silent)
)
