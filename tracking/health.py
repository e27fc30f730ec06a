"""Whether the store answers, and when to try it again after it did not."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

MAX_BACKOFF = 30.0
FIRST_BACKOFF = 0.5


class StoreHealth:
    """Up or down, with a backoff that doubles (to ``MAX_BACKOFF``) while failures go on.

    ``downs`` counts the failures so far: a write reads it before it starts and passes it to
    ``up`` when it succeeds, so a slow batch that lands after a newer one failed does not mark
    the store up again. ``clock`` is ``time.monotonic`` but in tests.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()  # the delivery lanes report at once
        self.ok = True
        self.downs = 0
        self.backoff = FIRST_BACKOFF
        self.next_retry = 0.0

    def down(self) -> None:
        """A write failed: wait ``backoff`` before the next try, doubled if it was down already."""
        with self._lock:
            self.downs += 1
            self.backoff = FIRST_BACKOFF if self.ok else min(self.backoff * 2, MAX_BACKOFF)
            self.ok = False
            self.next_retry = self._clock() + self.backoff

    def up(self, downs: int) -> bool:
        """A write that began when ``downs`` failures had been seen succeeded: the store is up,
        unless another failed since. True when this marked it up (it was down)."""
        if self.ok:
            return False
        with self._lock:
            if self.ok or self.downs != downs:
                return False
            self.ok = True
            self.backoff = FIRST_BACKOFF
            return True

    def may_try(self) -> bool:
        """Whether to send the store a batch now: it is up, or its backoff is over."""
        return self.ok or self._clock() >= self.next_retry


def error_text(exc: BaseException) -> str:
    """An error in one line: its type and the first line of its message."""
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
