"""``instrument(client)``: log every call an OpenAI or Anthropic SDK client makes.

The client is recognised by its class's module, and its integration is imported only then, so
``import tracking`` never imports openai or anthropic.
"""

from __future__ import annotations

import functools
import importlib
import logging
from typing import Any, TypeVar

from tracking import client as _client

log = logging.getLogger("unitwise")
C = TypeVar("C")

# the SDK's top-level package -> our integration module
_INTEGRATIONS = {
    "openai": "tracking.integrations.openai",
    "anthropic": "tracking.integrations.anthropic",
}
INSTRUMENTED = "_unitwise_instrumented"


def _sdk_of(client: object) -> str | None:
    for cls in type(client).__mro__:
        package = (getattr(cls, "__module__", "") or "").split(".")[0]
        if package in _INTEGRATIONS:
            return package
    return None


def instrument(client: C) -> C:
    """Log every call of ``client`` (OpenAI, AsyncOpenAI, AzureOpenAI, Anthropic, AsyncAnthropic)
    with its usage, latency, status and cost; returns the same client. Instrumenting twice is
    harmless. An unsupported object is left as it is, with a warning (ValueError when strict)."""
    try:
        if getattr(client, INSTRUMENTED, False):
            return client
        sdk = _sdk_of(client)
        integration = importlib.import_module(_INTEGRATIONS[sdk]) if sdk is not None else None
        supported = integration is not None and integration.supports(client)
    except Exception as exc:
        _internal(exc)
        return client
    if not supported:
        _unsupported(client)  # raises ValueError only in strict mode
        return client
    try:
        integration.instrument(client)  # type: ignore[union-attr]
        _instrument_copies(client)
        setattr(client, INSTRUMENTED, True)
    except Exception as exc:  # partly wrapped methods stay wrapped; a retry wraps the rest
        _internal(exc)
    return client


def _instrument_copies(client: Any) -> None:
    """``client.with_options(timeout=...)`` (or ``copy``) makes a new client: instrument it too."""
    for name in ("copy", "with_options"):
        original = getattr(client, name, None)
        if original is None:
            continue

        @functools.wraps(original)
        def copier(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
            return instrument(_original(*args, **kwargs))

        setattr(client, name, copier)


def _unsupported(client: Any) -> None:
    error = ValueError(
        f"tracking.instrument: {type(client).__module__}.{type(client).__qualname__} is not a "
        "supported client (OpenAI, AsyncOpenAI, AzureOpenAI, Anthropic, AsyncAnthropic); "
        "its calls are not logged: use tracking.track or tracking.record for them"
    )
    tracker = _client.get()
    if tracker is not None:
        tracker.reject(error)
    else:
        log.warning("unitwise: %s", error)


def _internal(exc: BaseException) -> None:
    tracker = _client.get()
    if tracker is not None:
        tracker.internal_error(exc)
    else:
        log.warning("unitwise: could not instrument the client: %s", exc)


def litellm_callback() -> Any:
    """A LiteLLM callback logging each call LiteLLM makes, for
    ``litellm.callbacks = [tracking.litellm_callback()]``; litellm is imported only here."""
    from tracking.integrations.litellm import UnitwiseLogger

    return UnitwiseLogger()
