"""A value loaded from the store in the background and read without I/O: the price book now,
budget spend later.

The writer thread calls ``refresh_if_due`` each cycle; callers read ``value``. A failed load
keeps the last value, records the error and tries again after a backoff that doubles up to
the interval (at most ``MAX_BACKOFF``), so a store that is down is not asked every cycle.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from tracking.health import FIRST_BACKOFF, MAX_BACKOFF, error_text

T = TypeVar("T")


class Refresher(Generic[T]):
    def __init__(
        self,
        name: str,
        load: Callable[[], T],
        interval: float,
        clock: Callable[[], float] = time.monotonic,
        max_backoff: float = MAX_BACKOFF,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.name = name
        self.interval = interval
        self.value: T | None = None
        self.loaded_at: float | None = None  # on ``clock``
        self.error: str | None = None
        self._load = load
        self._on_error = on_error  # to log it, say
        self._clock = clock
        self._max_backoff = min(max_backoff, interval)
        self._backoff = FIRST_BACKOFF
        self._next = 0.0  # due at once
        self._lock = threading.Lock()  # the writer thread and a host's explicit refresh

    def due(self) -> bool:
        return self._clock() >= self._next

    def refresh_if_due(self) -> bool:
        """Load when the interval (or the backoff after an error) is over; True if it loaded."""
        return self.refresh() if self.due() else False

    def refresh(self) -> bool:
        """Load now; on error keep the old value, note why and back off. True if it loaded."""
        try:
            value = self._load()
        except Exception as exc:
            with self._lock:
                self.error = error_text(exc)
                self._next = self._clock() + self._backoff
                self._backoff = min(self._backoff * 2, self._max_backoff)
            if self._on_error is not None:
                self._on_error(exc)
            return False
        with self._lock:
            self.value, self.error = value, None
            self.loaded_at = self._clock()
            self._next = self.loaded_at + self.interval
            self._backoff = FIRST_BACKOFF
        return True

    def after_fork(self) -> None:
        """A new lock in a forked child (the parent's may have been held at the fork)."""
        self._lock = threading.Lock()

    def make_due(self) -> None:
        """Load at the next ``refresh_if_due`` (a forked child, a store just made ready)."""
        self._next = 0.0

    def status(self) -> dict[str, Any]:
        """How stale the value is (seconds since it was loaded, None if never) and the last
        load's error (None once a load succeeds again)."""
        with self._lock:
            loaded_at, error = self.loaded_at, self.error
        age = None if loaded_at is None else round(self._clock() - loaded_at, 3)
        return {"age_s": age, "error": error}
