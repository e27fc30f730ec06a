"""Pausing Python's cyclic garbage collector while a report builds its many objects.

A margins report at 25,000 customers makes about a million objects (rows, terms, spans,
segments, Decimals) that form no reference cycles and mostly live on in the result. Every
700 new objects start a collection of the youngest generation, and every tenth of those an
older one, so the collector walks the new objects (and at times the whole heap of the app
server) again and again while they are made: about a quarter of the report's time
(bench/README.md, users page). Reference counting still frees what dies meanwhile.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

_lock = threading.Lock()
_running = 0  # blocks now running (app sessions are threads of one server)
_was_enabled = False  # the collector's state when the first of them began


@contextlib.contextmanager
def collections_paused() -> Iterator[None]:
    """No cyclic collection inside the block. With blocks on several threads at once, the
    collector is back when the last ends, as it was before the first began."""
    global _running, _was_enabled
    with _lock:
        if _running == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _running += 1
    try:
        yield
    finally:
        with _lock:
            _running -= 1
            if _running == 0 and _was_enabled:
                gc.enable()
