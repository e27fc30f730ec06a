"""The tracker behind the public API: builds, validates and prices events, then queues them.

Nothing here raises into the host app because of tracking itself: bad input is rejected, counted
and logged (raised as ValueError only with UNITWISE_STRICT=1), and the host's own exceptions pass
through ``track`` unchanged.
"""

from __future__ import annotations

import atexit
import functools
import inspect
import logging
import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

from tracking import context
from tracking.config import Settings, build_settings, env_flag
from tracking.counters import WRITER_COUNTS, Counters
from tracking.events import (
    COUNT_CHECKS,
    MAX_COST,
    CallEvent,
    _name,
    call_uuid,
    check_parts,
    flag,
    moment,
    money,
    tags_of,
    units_of,
)
from tracking.ratelog import RateLimitedLog
from tracking.schema import TOKEN_FIELDS

if TYPE_CHECKING:
    from tracking.budget_guard import BudgetGuard

log = logging.getLogger("unitwise")
F = TypeVar("F", bound=Callable[..., Any])


RECENT_REJECTIONS = 5  # kept for stats(): what was refused lately, not only how often


class Tracker:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # one set of counts for the caller's side and the writer's, under one lock
        self.counters = Counters((*WRITER_COUNTS, "rejected", "internal_errors"))
        # the writer and its parts load here, at configure() or the first call, not at import
        from tracking.pricing import price_event
        from tracking.writer import Writer

        self.writer = Writer(settings, counters=self.counters)
        self.budgets: BudgetGuard | None = None  # made by the first budget check
        self._price_event = price_event
        self._recent: deque[dict[str, str | None]] = deque(maxlen=RECENT_REJECTIONS)
        self._recent_lock = threading.Lock()
        self._logs = RateLimitedLog()

    def build(self, provider: object, model: object, fields: Mapping[str, Any]) -> CallEvent:
        """Validate everything the caller passed into a CallEvent (ValueError names the field).

        Only the fields given are looked at: a call names a handful of its twenty, and
        checking the absent ones cost a microsecond of the host's thread per call.
        """
        attribution = context.current()
        get = fields.get
        tags = get("tags")
        if tags:
            if not isinstance(tags, dict):
                raise ValueError("tags must be a dict of JSON values")
            tags = tags_of({**attribution.tags, **tags}, self.settings.max_tags_bytes)
        else:
            tags = self._block_tags(attribution)
        user_id = get("user_id")
        feature = get("feature")
        batch = get("batch")  # None, like every optional field, means not given
        event = CallEvent(
            id=call_uuid(get("call_id")),
            occurred_at=moment(get("occurred_at")),
            provider=_name("provider", provider, required=True),  # type: ignore[arg-type]
            model=_name("model", model, required=True),  # type: ignore[arg-type]
            status=get("status") or "ok",
            user_id=_name("user_id", attribution.user_id if user_id is None else user_id),
            feature=_name("feature", attribution.feature if feature is None else feature),
            units=units_of(get("units")),
            batch=False if batch is None else flag("batch", batch),
            tags=tags,
            environment=_name("environment", get("environment") or self.settings.environment),
        )
        for name, value in fields.items():
            check = _OPTIONAL_CHECKS.get(name)
            if check is not None and value is not None:
                setattr(event, name, check(name, value))
        check_parts(event)
        cost = money("cost_usd", get("cost_usd"))
        if cost is not None:
            event.cost_usd = cost
            event.cost_source = "provider"
            event.priced = True
        return event

    def _block_tags(self, attribution: context.Attribution) -> dict[str, Any] | None:
        """The tags of an ``attribute`` block, validated once and shared by its calls."""
        if not attribution.tags:
            return None
        cached = attribution.checked_tags.get("tags")
        if cached is None:
            checked = tags_of(dict(attribution.tags), self.settings.max_tags_bytes) or {}
            attribution.checked_tags["tags"] = cached = checked
        return cached or None

    def emit(self, event: CallEvent) -> None:
        book = self.writer.prices.value
        if book is not None and not event.priced:
            self._price_event(book, event)
            if event.cost_usd is not None and event.cost_usd > MAX_COST:  # else the store refuses
                raise ValueError(f"cost_usd computed from the usage must be at most {MAX_COST}")
        budgets = self.budgets
        if budgets is None:
            self.writer.put(event)
        else:  # added before it is queued: see tracking.budget_guard, "counted once"
            budgets.add(event)
            if not self.writer.put(event):
                budgets.forget(event)

    def reject(self, exc: ValueError) -> None:
        self.counters.add("rejected")
        message = str(exc)
        with self._recent_lock:  # a deque copied while another thread appends raises
            self._recent.append({"field": rejected_field(message), "message": message})
        if self.settings.strict:
            raise exc
        self._logs.warning("reject", "unitwise: call not logged, bad input: %s", exc)

    def internal_error(self, exc: BaseException) -> None:
        self.counters.add("internal_errors")
        if self.settings.strict:
            raise exc
        log.exception("unitwise: internal error, call not logged: %s", exc)

    def record(self, provider: object, model: object, fields: Mapping[str, Any]) -> Any:
        try:
            event = self.build(provider, model, fields)
            self.emit(event)
            return event.id
        except ValueError as exc:
            self.reject(exc)
        except Exception as exc:
            self.internal_error(exc)
        return None

    def stats(self) -> dict[str, Any]:
        with self._recent_lock:
            recent = list(self._recent)
        found = {**self.writer.stats(), "recent_rejections": recent, "enabled": True}
        if self.budgets is not None:
            found["refreshers"] = {**found["refreshers"], "budgets": self.budgets.status()}
        return found

    def budget_guard(self) -> BudgetGuard:
        """The budgets in memory, made (and their background loads started) on first use."""
        guard = self.budgets
        if guard is None:
            from tracking.budget_guard import BudgetGuard

            with _lock:
                guard = self.budgets
                if guard is None:
                    sink, interval = self.writer.sink, self.settings.budget_refresh_interval
                    guard = BudgetGuard(
                        lambda: sink.engine, interval, sink.logs, watched=sink.watched
                    )
                    self.budgets = guard
            guard.start()
        return guard

    def stop(self, timeout: float | None) -> bool:
        """Stop the budgets' loads (waiting a second at most), then flush and stop the writer."""
        if self.budgets is not None:
            self.budgets.stop(1.0 if timeout is None else min(timeout, 1.0))
        return self.writer.shutdown(timeout)


def rejected_field(message: str) -> str | None:
    """The field a validation message names: each starts with it ("input_tokens must ...")."""
    found = _FIELD.match(message)
    return found.group(1) if found else None


_FIELD = re.compile(r"([A-Za-z_][A-Za-z0-9_]*) ")


# The optional fields checked only when a call gives them (the others keep their defaults).
_OPTIONAL_CHECKS: dict[str, Callable[[str, Any], Any]] = {
    **{name: COUNT_CHECKS[name] for name in ("duration_ms", "ttft_ms", *TOKEN_FIELDS)},
    **{name: _name for name in ("requested_model", "operation", "error_type", "request_id")},
}

_tracker: Tracker | None = None
_lock = threading.Lock()


def configure(
    url: str | None = None,
    journal_path: str | None = None,
    queue_size: int | None = None,
    **options: Any,
) -> None:
    """(Re)configure tracking; a previous tracker is flushed and shut down first.

    A bad option raises ValueError naming it: this is the host's own start-up call, and a
    typo must not quietly leave tracking off or at its defaults.
    """
    global _tracker, _settings
    settings = build_settings(url, journal_path, queue_size, **options)
    with _lock:
        old, _tracker = _tracker, (Tracker(settings) if settings.enabled else None)
        _settings = settings
        _disabled.update(on=not settings.enabled, error=None)
    if old is not None:
        old.stop(old.settings.shutdown_timeout)
    if _tracker is not None:
        _tracker.writer.start_if_journal_pending()


_disabled: dict[str, Any] = {"on": False, "error": None}
_settings: Settings | None = None  # the last configure()'s, kept across shutdown()


def get() -> Tracker | None:
    """The active tracker, configured on first use (from the last ``configure()``, else from
    the environment); None when disabled.

    A bad environment (a malformed ``$DATABASE_URL``, say) turns tracking off with one logged
    error instead of raising from every call (raised under UNITWISE_STRICT=1).
    """
    global _tracker
    tracker = _tracker
    if tracker is not None or _disabled["on"]:
        return tracker
    with _lock:
        if _tracker is None and not _disabled["on"]:
            try:
                settings = _settings or build_settings()
                if settings.enabled:
                    _tracker = Tracker(settings)
                    _tracker.writer.start_if_journal_pending()
                else:
                    _disabled["on"] = True
            except Exception as exc:
                _disabled.update(on=True, error=str(exc))
                log.error("unitwise: tracking is off, its configuration is invalid: %s", exc)
                if env_flag("UNITWISE_STRICT"):
                    raise
        return _tracker


def record(provider: str, model: str, **fields: Any) -> Any:
    """Log one call: tokens, other billable units as keywords (``requests=1``), attribution.

    Returns the call's id, or None when it was not logged.
    """
    tracker = get()
    if tracker is None:
        return None
    others = fields.keys() - _RECORD_FIELDS
    if others:  # billable units given as keywords join ``units`` (a bad ``units`` is refused)
        units = fields.get("units") or {}
        if isinstance(units, Mapping):
            fields["units"] = {**units, **{name: fields.pop(name) for name in others}}
    return tracker.record(provider, model, fields)


_RECORD_FIELDS = frozenset(
    {
        *TOKEN_FIELDS,
        "units",
        "user_id",
        "feature",
        "tags",
        "occurred_at",
        "call_id",
        "duration_ms",
        "ttft_ms",
        "status",
        "error_type",
        "operation",
        "cost_usd",
        "batch",
        "request_id",
        "requested_model",
        "environment",
    }
)


class TrackedCall:
    """The handle ``track`` yields: set what the call used while it runs."""

    def __init__(self, provider: str, model: str, fields: dict[str, Any]) -> None:
        self.provider = provider
        self.model = model
        self.fields = fields
        self._started = 0.0
        self.id: Any = None

    def set_usage(self, **usage: int | float | Decimal | None) -> None:
        """Tokens or any billable unit the price table knows (``audio_seconds=330``)."""
        units = self.fields.setdefault("units", {})
        for name, value in usage.items():
            if name in TOKEN_FIELDS:
                self.fields[name] = value
            else:
                units[name] = value

    def set_model(self, model: str) -> None:
        """The model that answered, when it differs from the one asked for."""
        self.fields.setdefault("requested_model", self.model)
        self.model = model

    def set_cost(self, cost_usd: Decimal | str | int) -> None:
        """A cost the provider reported: it wins over the computed one."""
        self.fields["cost_usd"] = cost_usd

    def set(self, **fields: Any) -> None:
        """Any other field of ``record`` (request_id, status, tags, ...)."""
        self.fields.update(fields)

    def __enter__(self) -> TrackedCall:
        self._started = time.perf_counter()
        self.fields.setdefault("occurred_at", moment(None))
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        elapsed = int((time.perf_counter() - self._started) * 1000)
        self.fields.setdefault("duration_ms", elapsed)
        if exc is not None:
            self.fields["status"] = "error"
            self.fields.setdefault("error_type", type(exc).__name__)
        self.id = record(self.provider, self.model, **self.fields)
        # returning None re-raises the host's exception unchanged

    async def __aenter__(self) -> TrackedCall:
        return self.__enter__()

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self.__exit__(exc_type, exc, tb)


def track(provider: str, model: str, operation: str | None = None, **fields: Any) -> TrackedCall:
    """Time a call no integration covers: latency, status and error type are logged at exit."""
    if operation is not None:
        fields["operation"] = operation
    return TrackedCall(provider, model, fields)


def tracked(
    provider: str,
    model: str,
    operation: str | None = None,
    usage: Callable[[Any], Mapping[str, Any]] | None = None,
    **fields: Any,
) -> Callable[[F], F]:
    """Decorate a function (sync or async) so each call is logged like ``track``.

    ``usage``, if given, maps the function's return value to usage keywords.
    """

    def decorate(func: F) -> F:
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with track(provider, model, operation, **dict(fields)) as call:
                    result = await func(*args, **kwargs)
                    _apply_usage(call, usage, result)
                    return result

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with track(provider, model, operation, **dict(fields)) as call:
                result = func(*args, **kwargs)
                _apply_usage(call, usage, result)
                return result

        return wrapper  # type: ignore[return-value]

    return decorate


def _apply_usage(call: TrackedCall, usage: Callable[[Any], Mapping[str, Any]] | None, result: Any):
    if usage is None:
        return
    try:
        call.set_usage(**usage(result))
    except Exception as exc:  # the host's result stays the host's, whatever our mapper does
        tracker = get()
        if tracker is not None:
            tracker.internal_error(exc)


def flush(timeout: float = 5.0) -> bool:
    """Wait until every queued call is in the store (or the journal); False on timeout."""
    tracker = _tracker
    return True if tracker is None else tracker.writer.flush(timeout)


def shutdown(timeout: float | None = None) -> bool:
    """Flush within ``timeout`` and stop the writer; later calls start a new one."""
    global _tracker
    with _lock:
        tracker, _tracker = _tracker, None
    return True if tracker is None else tracker.stop(timeout)


def stats() -> dict[str, Any]:
    """Counts of queued, written, spilled, replayed, dropped and rejected calls."""
    tracker = _tracker
    if tracker is None:
        found: dict[str, Any] = {"enabled": not _disabled["on"], "queued": 0}
        if _disabled["error"]:
            found["error"] = _disabled["error"]
        return found
    return tracker.stats()


def refresh_prices() -> None:
    """Reload prices from the store now (normally done in the background every minute)."""
    tracker = get()
    if tracker is not None:
        tracker.writer.refresh_prices()


def _at_exit() -> None:
    tracker = _tracker
    if tracker is not None:
        tracker.stop(tracker.settings.shutdown_timeout)


atexit.register(_at_exit)


def _locks_after_fork() -> None:
    """New locks in a forked child: a thread of the parent may have held one at the fork, and
    no thread of the child would ever release it (the writer renews its own)."""
    global _lock
    _lock = threading.Lock()
    tracker = _tracker
    if tracker is not None:
        tracker._recent_lock = threading.Lock()
        tracker._logs.after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_locks_after_fork)
