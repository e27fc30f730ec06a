"""Logging a recurring problem without flooding the host's log."""

from __future__ import annotations

import logging
import threading
import time

log = logging.getLogger("unitwise")


class RateLimitedLog:
    """Log a recurring problem at most once per interval, with how often it happened since."""

    def __init__(self, interval: float = 60.0) -> None:
        self.interval = interval
        self._last: dict[str, float] = {}
        self._count: dict[str, int] = {}
        self._lock = threading.Lock()  # host threads and both lanes report problems at once

    def after_fork(self) -> None:
        """A new lock in a forked child (the parent's may have been held at the fork)."""
        self._lock = threading.Lock()

    def warning(self, key: str, message: str, *args: object) -> None:
        self._log(logging.WARNING, key, message, *args)

    def error(self, key: str, message: str, *args: object) -> None:
        """An error (calls lost, say): as rare in the log as a warning, counted the same way."""
        self._log(logging.ERROR, key, message, *args)

    def _log(self, level: int, key: str, message: str, *args: object) -> None:
        now = time.monotonic()
        with self._lock:
            self._count[key] = self._count.get(key, 0) + 1
            if now - self._last.get(key, -self.interval) < self.interval:
                return
            times = self._count.pop(key)
            self._last[key] = now
        log.log(level, message + " (%d time(s) in the last minute)", *args, times)
