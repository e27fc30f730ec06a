"""The SDK's stream objects as the host sees them, with the call logged once the stream ends.

A proxy rather than a subclass: the SDK's object is left as it is, every attribute the host reads
(``response``, ``_iterator``...) is the SDK's own, and ``isinstance(stream, openai.Stream)`` still
holds (``__class__`` answers the SDK's class, as wrapt's proxies do). The call is logged when the
stream is read to the end, fails, is closed (``close()``, ``with`` exit), or, abandoned half-read,
when the proxy is garbage-collected or the process exits.
"""

from __future__ import annotations

import atexit
import time
import weakref
from collections.abc import Callable
from typing import Any

from tracking.integrations._call import Call, guarded

Observe = Callable[[Call, Any], None]


def _collected(call: Call) -> None:
    """The host dropped a stream it never finished nor closed: log what it had read."""
    _open.discard(call)
    if not call.done:
        call.tags["stream_end"] = "collected"
    call.finish()


# streams not yet logged; at exit they are logged with what they had read. This module is
# imported after tracking.client, so this runs before tracking's own exit flush (atexit is LIFO)
_open: set[Call] = set()


@atexit.register
def _at_exit() -> None:
    for call in list(_open):
        if not call.done:
            call.tags["stream_end"] = "exit"
        call.finish()
    _open.clear()


class _Proxy:
    __slots__ = ("__weakref__", "_uw_call", "_uw_finalizer", "_uw_inner", "_uw_observe")

    def __init__(self, inner: Any, call: Call, observe: Observe) -> None:
        object.__setattr__(self, "_uw_inner", inner)
        object.__setattr__(self, "_uw_call", call)
        object.__setattr__(self, "_uw_observe", observe)
        finalizer = weakref.finalize(self, _collected, call)
        finalizer.atexit = False  # at exit, _at_exit logs it (before tracking's final flush)
        object.__setattr__(self, "_uw_finalizer", finalizer)
        _open.add(call)

    # -- the SDK object's face ------------------------------------------------------------------
    @property  # type: ignore[misc]
    def __class__(self) -> type:  # isinstance(proxy, openai.Stream) stays True
        return type(self._uw_inner)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._uw_inner, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._uw_inner, name, value)

    def __repr__(self) -> str:
        return repr(self._uw_inner)

    # -- what the call saw ----------------------------------------------------------------------
    def _uw_seen(self, item: Any) -> None:
        call = self._uw_call
        if call.first_at is None:
            call.first_at = time.perf_counter()
        guarded(self._uw_observe, call, item)

    def _uw_end(self, exc: BaseException | None = None, how: str | None = None) -> None:
        call = self._uw_call
        self._uw_finalizer.detach()
        _open.discard(call)
        if exc is not None:
            guarded(call.failed, exc)
        elif how is not None and not call.done:
            call.tags["stream_end"] = how
        call.finish()


class TrackedStream(_Proxy):
    """Stands in for ``openai.Stream`` / ``anthropic.Stream``."""

    __slots__ = ()

    def __iter__(self) -> TrackedStream:
        return self

    def __next__(self) -> Any:
        try:
            item = next(self._uw_inner)
        except StopIteration:
            self._uw_end()
            raise
        except BaseException as exc:
            self._uw_end(exc)
            raise
        self._uw_seen(item)
        return item

    def close(self) -> None:
        try:
            self._uw_inner.close()
        finally:
            self._uw_end(how="closed")

    def __enter__(self) -> TrackedStream:
        self._uw_inner.__enter__()
        return self

    def __exit__(self, *exc_info: Any) -> Any:
        try:
            return self._uw_inner.__exit__(*exc_info)
        finally:
            self._uw_end(how="closed")


class TrackedAsyncStream(_Proxy):
    """Stands in for ``openai.AsyncStream`` / ``anthropic.AsyncStream``."""

    __slots__ = ()

    def __aiter__(self) -> TrackedAsyncStream:
        return self

    async def __anext__(self) -> Any:
        try:
            item = await self._uw_inner.__anext__()
        except StopAsyncIteration:
            self._uw_end()
            raise
        except BaseException as exc:
            self._uw_end(exc)
            raise
        self._uw_seen(item)
        return item

    async def close(self) -> None:
        try:
            await self._uw_inner.close()
        finally:
            self._uw_end(how="closed")

    async def __aenter__(self) -> TrackedAsyncStream:
        await self._uw_inner.__aenter__()
        return self

    async def __aexit__(self, *exc_info: Any) -> Any:
        try:
            return await self._uw_inner.__aexit__(*exc_info)
        finally:
            self._uw_end(how="closed")
