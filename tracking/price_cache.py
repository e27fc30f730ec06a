"""The store's prices in memory: callers price events from it without I/O, the writer thread
reloads it every ``price_refresh_interval``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from tracking.events import CallEvent
from tracking.pricing import PriceBook, price_event
from tracking.ratelog import RateLimitedLog
from tracking.refresher import Refresher

log = logging.getLogger("unitwise")


class PriceCache(Refresher[PriceBook]):
    """The price book, a ``Refresher`` that also notices a store without any price: every call
    would then be stored unpriced, which the log says once (not at every reload) and
    ``stats()`` shows as ``prices_empty``."""

    def __init__(
        self, load: Callable[[], PriceBook], interval: float, logs: RateLimitedLog
    ) -> None:
        super().__init__("prices", self._load_book, interval, on_error=self._failed)
        self._read = load
        self._logs = logs
        self.empty = False  # the store was read and holds no price at all

    def _load_book(self) -> PriceBook:
        book = self._read()
        empty = len(book) == 0
        if empty and not self.empty:
            log.warning(
                "unitwise: the store has no prices, so every call is stored unpriced; load the "
                "reference catalogue with: python -m tracking migrate --url ..."
            )
        self.empty = empty
        return book

    def _failed(self, exc: BaseException) -> None:
        self._logs.warning("prices", "unitwise: could not load prices: %s", exc)

    def price(self, events: list[CallEvent]) -> None:
        """Price the events not priced yet (on the host thread the book may not be loaded)."""
        book = self.value
        if book is None:
            return
        for e in events:
            if not e.priced:
                price_event(book, e)

    def stats(self) -> dict[str, Any]:
        return {
            "prices_loaded": self.value is not None and not self.empty,
            "prices_empty": self.empty,
        }
