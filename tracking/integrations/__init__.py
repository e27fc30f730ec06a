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
POLICY = "_unitwise_policy"  # the client's Policy (enforce_budgets), shared by its wrappers


def _sdk_of(client: object) -> str | None:
    for cls in type(client).__mro__:
        package = (getattr(cls, "__module__", "") or "").split(".")[0]
        if package in _INTEGRATIONS:
            return package
    return None


def instrument(client: C, enforce_budgets: bool = False) -> C:
    """Log every call of ``client`` (OpenAI, AsyncOpenAI, AzureOpenAI, Anthropic, AsyncAnthropic)
    with its usage, latency, status and cost; returns the same client. Instrumenting twice is
    harmless. An unsupported object is left as it is, with a warning (ValueError when strict).

    ``enforce_budgets=True``: before each request, ``check_budget`` with the attribution in force
    and the request's model; a hard budget used up raises ``tracking.BudgetExceeded`` and
    nothing is sent. Once on, a later ``instrument(client)`` does not turn it off."""
    try:
        if enforce_budgets:
            _start_budget_loads()
        if getattr(client, INSTRUMENTED, False):
            policy = getattr(client, POLICY, None)
            if enforce_budgets and policy is not None:
                policy.enforce_budgets = True
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
        from tracking.integrations._policy import Policy

        policy = Policy(enforce_budgets)
        setattr(client, POLICY, policy)
        integration.instrument(client, policy)  # type: ignore[union-attr]
        _instrument_copies(client, policy)
        setattr(client, INSTRUMENTED, True)
    except Exception as exc:  # partly wrapped methods stay wrapped; a retry wraps the rest
        _internal(exc)
    return client


def _start_budget_loads() -> None:
    """Begin loading the budgets now, so they are known by the first request."""
    tracker = _client.get()
    if tracker is not None:
        tracker.budget_guard()


def _instrument_copies(client: Any, policy: Any) -> None:
    """``client.with_options(timeout=...)`` (or ``copy``) makes a new client: instrument it too,
    enforcing budgets if this one does."""
    for name in ("copy", "with_options"):
        original = getattr(client, name, None)
        if original is None:
            continue

        @functools.wraps(original)
        def copier(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
            return instrument(_original(*args, **kwargs), policy.enforce_budgets)

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
