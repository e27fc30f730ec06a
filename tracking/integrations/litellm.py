"""A LiteLLM callback: every call LiteLLM makes (SDK or proxy) logged as one Unitwise call.

Set up with ``litellm.callbacks = [tracking.litellm_callback()]``. LiteLLM calls
``log_success_event`` / ``log_failure_event`` for sync requests and the ``async_`` ones for async
requests; a stream is logged once, when LiteLLM has assembled it, with its final usage. Each call
is stored under LiteLLM's own ``litellm_call_id``, so should LiteLLM ever deliver one call to both
hooks it is still one row.

Token conversion (DESIGN.md), checked against the real package: LiteLLM's ``prompt_tokens`` is
all input for every provider (for Anthropic it adds the cache reads and writes to Anthropic's
``input_tokens`` itself), so it maps to ``input_tokens`` as it is, and the cache counts
(``prompt_tokens_details.cached_tokens`` or ``cache_read_input_tokens``;
``cache_creation_input_tokens``) are parts of it. ``completion_tokens`` includes
``completion_tokens_details.reasoning_tokens``. Nothing is added, so nothing is counted twice.

The price is Unitwise's own; LiteLLM's ``response_cost`` is kept beside it as the tag
``litellm_cost`` (a decimal string) so that a difference shows.

Attribution, first found wins: ``user_id`` from the request's ``metadata["user_id"]``, the
request's ``user``, then LiteLLM's ``end_user`` (the proxy's customer); ``feature`` from
``metadata["feature"]``; tags from ``metadata["unitwise_tags"]`` (a dict) and LiteLLM's request
tags (``metadata["tags"]``) as ``litellm_tags``; whatever is missing comes from the
``tracking.attribute`` block the call began in (kept with the call by ``log_pre_api_call``).
On the proxy (tests/test_litellm_proxy.py runs the real one) the client's ``metadata`` and
``user`` are read the same way; the proxy's own ``User-Agent: ...`` request tags are left out,
and as it writes its model name (``model_group``) over the response's ``model``, the model
stored is then the deployment's (``openai/gpt-4o`` -> ``gpt-4o``) and the requested model the
name the client asked for.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from litellm.integrations.custom_logger import CustomLogger

from tracking import client as _client
from tracking import context
from tracking.integrations._call import field, internal_error, tokens

# LiteLLM's call types (async ones start with "a") -> our operation names
_OPERATIONS = {
    "completion": "chat",
    "embedding": "embedding",
    "responses": "responses",
    "text_completion": "completion",
    "transcription": "transcription",
    "speech": "speech",
    "image_generation": "image",
}
# failures with no answer from the provider: whether they were billed is unknown (unpriced)
_UNANSWERED = {"Timeout", "APIConnectionError"}
ATTRIBUTION = "unitwise_attribution"  # where the caller's attribution waits in LiteLLM's kwargs
_AGENT_TAG = "User-Agent: "
_REQUEST_ID_HEADERS = ("llm_provider-x-request-id", "llm_provider-request-id")


class UnitwiseLogger(CustomLogger):
    """LiteLLM's callback interface, each hook handing the call to ``log_call``; none raises."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "litellm.proxy.proxy_server" in sys.modules:  # loaded by the proxy's config
            exit_on_sigterm()

    def log_pre_api_call(self, model: Any, messages: Any, kwargs: Any) -> None:
        remember_attribution(kwargs)

    def log_success_event(
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        log_call(kwargs, response_obj, failed=False)

    def log_failure_event(
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        log_call(kwargs, response_obj, failed=True)

    async def async_log_success_event(
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        log_call(kwargs, response_obj, failed=False)

    async def async_log_failure_event(
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        log_call(kwargs, response_obj, failed=True)


def exit_on_sigterm() -> None:
    """Let SIGTERM end the proxy through ``atexit``, where tracking flushes its queue. The
    proxy's uvicorn shuts down gracefully on SIGTERM, then raises it again under the handler it
    found, Python's default, which ends the process at once: the calls still queued were lost
    (0 of 20 stored, against 20 of 20 after Ctrl-C). So the SIGTERM handler found (LiteLLM's,
    which calls uvicorn's) is told SIGINT instead: the same graceful shutdown, then
    KeyboardInterrupt, an orderly exit. Called at the proxy's start-up, in its main thread."""
    try:
        if threading.current_thread() is not threading.main_thread():
            return
        handler = signal.getsignal(signal.SIGTERM)
        if callable(handler) and "uvicorn" in sys.modules:  # uvicorn's, or LiteLLM's around it
            signal.signal(signal.SIGTERM, lambda _sig, frame: handler(signal.SIGINT, frame))
    except Exception as exc:
        internal_error(exc)


def log_call(kwargs: Any, response: Any, failed: bool) -> None:
    """Build and queue the call LiteLLM reports (no I/O); tracking's own errors stay here."""
    try:
        tracker = _client.get()
        if tracker is None or not isinstance(kwargs, Mapping):
            return
        payload = kwargs.get("standard_logging_object") or {}
        provider = payload.get("custom_llm_provider") or _params(kwargs).get("custom_llm_provider")
        fields = call_fields(kwargs, payload, response, failed, provider)
        model = served_model(payload, response, provider, failed) or "unknown"
        event = tracker.build(provider or "unknown", model, fields)
        if fields["tags"].get("usage_reported") is False:
            event.priced = True  # tokens unknown, not zero: the cost stays NULL, never $0
        tracker.emit(event)
    except ValueError as exc:
        tracker = _client.get()
        if tracker is not None:
            tracker.reject(exc)
    except Exception as exc:
        internal_error(exc)


def remember_attribution(kwargs: Any) -> None:
    """Keep the caller's ``tracking.attribute`` with the call as it starts: LiteLLM may log it
    from another thread, after the block has ended (a stream read later). Plain values, as
    LiteLLM's other loggers may copy or serialise these kwargs."""
    try:
        found = context.current()
        if isinstance(kwargs, dict) and found is not context.EMPTY:
            kwargs[ATTRIBUTION] = {
                "user_id": found.user_id,
                "feature": found.feature,
                "tags": dict(found.tags),
            }
    except Exception as exc:
        internal_error(exc)


def call_fields(
    kwargs: Mapping[str, Any],
    payload: Mapping[str, Any],
    response: Any,
    failed: bool,
    provider: Any,
) -> dict[str, Any]:
    """Everything but provider and model, as ``tracker.build`` takes it (``provider``, as
    LiteLLM names it, takes its prefix off the requested model)."""
    requested = payload.get("model_group") or payload.get("model") or kwargs.get("model")
    fields: dict[str, Any] = {
        "call_id": payload.get("litellm_call_id") or kwargs.get("litellm_call_id"),
        "requested_model": _unprefixed(requested, provider),
        "operation": operation(kwargs.get("call_type") or payload.get("call_type")),
        "status": "error" if failed else "ok",
        "request_id": request_id(payload),
        **timing(payload),
        **attribution(kwargs, payload),
    }
    tags = fields["tags"]
    cost = payload.get("response_cost", kwargs.get("response_cost"))
    if isinstance(cost, int | float) and not isinstance(cost, bool):
        tags["litellm_cost"] = litellm_cost(cost)
    if failed:
        exc = kwargs.get("exception")
        error_class = field(payload, "error_information", "error_class")
        fields["error_type"] = type(exc).__name__ if exc is not None else error_class or "error"
        if fields["error_type"] in _UNANSWERED:
            tags["usage_reported"] = False
        return fields
    usage = field(response, "usage")
    if usage is None:
        tags["usage_reported"] = False
    else:
        fields.update(usage_fields(usage))
    return fields


def served_model(payload: Mapping[str, Any], response: Any, provider: Any, failed: bool) -> Any:
    """The provider's model. The proxy writes its own model name (``model_group``, the name a
    client asks for) over the response's ``model``: then, and on failure, it is the deployment's
    model (``openai/gpt-4o`` in the config is ``gpt-4o``)."""
    model = field(response, "model") if not failed else None
    if isinstance(model, str) and model and model != payload.get("model_group"):
        return model
    deployment = _unprefixed(payload.get("model"), provider)
    return deployment or (model if isinstance(model, str) and model else None)


def _unprefixed(model: object, provider: object) -> str | None:
    """``openai/gpt-4o`` -> ``gpt-4o``: the provider is stored on its own."""
    if not isinstance(model, str) or not model:
        return None
    prefix = f"{provider}/" if isinstance(provider, str) and provider else None
    return model[len(prefix) :] if prefix and model.startswith(prefix) else model


def litellm_cost(cost: float) -> str:
    """LiteLLM's float cost as a plain decimal string, without its float sums' noise
    (0.000030000000000000004 is "0.00003")."""
    return f"{Decimal(f'{cost:.12g}'):f}"


def usage_fields(usage: Any) -> dict[str, Any]:
    """LiteLLM's usage in Unitwise's token fields (see the module's docstring)."""
    cache_read = tokens(field(usage, "prompt_tokens_details", "cached_tokens"))
    if cache_read is None:
        cache_read = tokens(field(usage, "cache_read_input_tokens"))
    cache_write = tokens(field(usage, "cache_creation_input_tokens"))
    if cache_write is None:
        cache_write = tokens(field(usage, "prompt_tokens_details", "cache_creation_tokens"))
    found = {
        "input_tokens": tokens(field(usage, "prompt_tokens")),
        "cache_read_tokens": cache_read or None,
        "cache_write_tokens": cache_write or None,
        "output_tokens": tokens(field(usage, "completion_tokens")),
        "reasoning_tokens": tokens(field(usage, "completion_tokens_details", "reasoning_tokens"))
        or None,
    }
    return {name: value for name, value in found.items() if value is not None}


def timing(payload: Mapping[str, Any]) -> dict[str, Any]:
    """When the call began, how long it took and, for a stream, the first token's wait, from
    the payload's epoch seconds (LiteLLM's own datetimes are naive local times)."""
    start, end = payload.get("startTime"), payload.get("endTime")
    if not isinstance(start, int | float) or not isinstance(end, int | float):
        return {}
    found = {
        "occurred_at": datetime.fromtimestamp(start, UTC),
        "duration_ms": max(0, int((end - start) * 1000)),
    }
    first = payload.get("completionStartTime")
    if payload.get("stream") and isinstance(first, int | float) and start <= first < end:
        found["ttft_ms"] = int((first - start) * 1000)
    return found


def attribution(kwargs: Mapping[str, Any], payload: Mapping[str, Any]) -> dict[str, Any]:
    """user_id, feature and tags from the request, else from the ``tracking.attribute`` block
    the call began in (see the module's docstring)."""
    metadata = {**(_mapping(field(payload, "metadata", "requester_metadata"))), **_metadata(kwargs)}
    block = _mapping(kwargs.get(ATTRIBUTION))
    user = (
        metadata.get("user_id")
        or kwargs.get("user")
        or payload.get("end_user")
        or block.get("user_id")
    )
    feature = metadata.get("feature") or block.get("feature")
    tags: dict[str, Any] = {
        **_mapping(block.get("tags")),
        **_mapping(metadata.get("unitwise_tags")),
    }
    request_tags = payload.get("request_tags") or metadata.get("tags")
    if isinstance(request_tags, list):
        # the proxy adds the client's User-Agent to every request's tags: not the caller's tags
        found_tags = [str(tag) for tag in request_tags if not str(tag).startswith(_AGENT_TAG)]
        if found_tags:
            tags["litellm_tags"] = found_tags
    found: dict[str, Any] = {"tags": tags}
    if isinstance(user, str) and user:
        found["user_id"] = user
    if isinstance(feature, str) and feature:
        found["feature"] = feature
    return found


def operation(call_type: object) -> str | None:
    if not isinstance(call_type, str) or not call_type:
        return None
    if call_type not in _OPERATIONS and call_type.startswith("a"):
        call_type = call_type[1:]
    return _OPERATIONS.get(call_type, call_type)


def request_id(payload: Mapping[str, Any]) -> str | None:
    headers = _mapping(field(payload, "hidden_params", "additional_headers"))
    for name in _REQUEST_ID_HEADERS:
        value = headers.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def _params(kwargs: Mapping[str, Any]) -> Mapping[str, Any]:
    return _mapping(kwargs.get("litellm_params"))


def _metadata(kwargs: Mapping[str, Any]) -> Mapping[str, Any]:
    return _mapping(_params(kwargs).get("metadata"))


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
