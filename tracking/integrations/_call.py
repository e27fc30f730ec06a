"""One instrumented SDK call: timed from the request, tagged, and logged exactly once.

Modelled on PostHog's ``call_llm_and_track_usage``: time the call, read its usage, log it in a
``finally``, and let the host's own exception through unchanged. Whatever goes wrong in here is
tracking's problem, never the host's: it is counted by the tracker (raised only in strict mode).
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from tracking import client as _client
from tracking.schema import TOKEN_FIELDS

# a call's usage: token fields and other billable units (audio_seconds, characters...) by name
Usage = dict[str, Any]


class Call:
    """What one call has shown so far: started at construction, logged by ``finish`` once."""

    __slots__ = (
        "_ctx",
        "_done",
        "_lock",
        "error_type",
        "first_at",
        "model",
        "occurred_at",
        "operation",
        "provider",
        "request_id",
        "requested_model",
        "started",
        "status",
        "tags",
        "unreported",
        "usage",
    )

    def __init__(
        self, provider: str, operation: str, requested_model: object, streaming: bool = False
    ) -> None:
        self.provider = provider
        self.operation = operation
        self.requested_model = requested_model if isinstance(requested_model, str) else None
        self.model: str | None = None
        self.usage: Usage = {}
        self.request_id: str | None = None
        self.status = "ok"
        self.error_type: str | None = None
        self.tags: dict[str, Any] = {}
        self.unreported = False  # True: the provider never said what the call used
        self.first_at: float | None = None
        self.occurred_at = datetime.now(UTC)
        # a stream may end outside the ``attribute`` block it began in, or in the collector:
        # it is logged with the attribution of the moment it began
        self._ctx = contextvars.copy_context() if streaming else None
        self._done = False
        self._lock = threading.Lock()
        self.started = time.perf_counter()

    @property
    def done(self) -> bool:
        return self._done

    def failed(self, exc: BaseException) -> None:
        """The provider's (or the network's) error: its type and request id; usage already seen
        (a stream that failed half-way) is kept."""
        self.status = "error"
        self.error_type = type(exc).__name__
        request_id = getattr(exc, "request_id", None)
        if isinstance(request_id, str):
            self.request_id = request_id
        if getattr(exc, "status_code", None) is None and not any(self.usage.values()):
            # no answer (a timeout, a dropped connection): whether it was billed is unknown, so
            # it stays unpriced; a provider's error answer (429, 400...) bills nothing: $0
            self.unreported = True

    def finish(self) -> None:
        """Log the call with what was seen; later calls do nothing."""
        with self._lock:
            if self._done:
                return
            self._done = True
        ended = time.perf_counter()
        if self._ctx is not None:
            self._ctx.run(self._emit, ended)
        else:
            self._emit(ended)

    def _emit(self, ended: float) -> None:
        tracker = _client.get()
        if tracker is None:
            return
        fields: dict[str, Any] = {
            "occurred_at": self.occurred_at,
            "duration_ms": int((ended - self.started) * 1000),
            "operation": self.operation,
            "status": self.status,
            "error_type": self.error_type,
            "request_id": self.request_id,
            "requested_model": self.requested_model,
        }
        if self.first_at is not None:
            fields["ttft_ms"] = int((self.first_at - self.started) * 1000)
        units = {}
        for name, value in self.usage.items():
            if name in TOKEN_FIELDS:
                fields[name] = value
            elif value is not None:
                units[name] = value
        if units:
            fields["units"] = units
        if self.unreported:
            self.tags["usage_reported"] = False
        if self.tags:
            fields["tags"] = self.tags
        model = self.model or self.requested_model or "unknown"
        try:
            event = tracker.build(self.provider, model, fields)
            if self.unreported:
                # the tokens are unknown, not zero: leave the call unpriced (cost NULL), never $0
                event.priced = True
            tracker.emit(event)
        except ValueError as exc:
            tracker.reject(exc)
        except Exception as exc:
            tracker.internal_error(exc)


def guarded(step: Callable[..., Any], *args: Any) -> None:
    """Run one of tracking's own steps (reading usage): a bug in it never reaches the host."""
    try:
        step(*args)
    except Exception as exc:
        internal_error(exc)


def internal_error(exc: BaseException) -> None:
    """Count and log a bug of tracking's own (raised only in strict mode)."""
    tracker = _client.get()
    if tracker is not None:
        tracker.internal_error(exc)


def field(obj: object, *path: str) -> Any:
    """``obj.a.b`` for SDK objects and dicts alike; None where any step is missing."""
    for name in path:
        if obj is None:
            return None
        obj = obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)
    return obj


def tokens(value: object) -> int | None:
    """A token count as the SDK gave it: a whole number, or None (never a made-up 0)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None
