"""Anthropic clients: ``messages.create`` (also ``stream=True``), ``messages.stream(...)`` and
``messages.parse``.

Token conversion (DESIGN.md): Anthropic reports ``input_tokens`` *beside* the cache, not
including it, so ours is ``input_tokens + cache_read_input_tokens + cache_creation_input_tokens``,
with ``cache_read_tokens`` and ``cache_write_tokens`` the two cache parts of it. Each cached
token is therefore in ``input_tokens`` once and priced once (at its cache rate).

In a stream, ``message_start`` carries the input side of the usage and ``message_delta`` the
output tokens (cumulative, so the last one wins).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anthropic

from tracking.integrations._call import Call, field, guarded, tokens
from tracking.integrations._policy import Policy, enforce
from tracking.integrations._stream import TrackedAsyncStream, TrackedStream
from tracking.integrations._wrap import MARK, Spec, failed, start, stream_request_id, wrap

PROVIDER = "anthropic"
_INPUT_PARTS = ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")


def message_usage(usage: Any) -> dict[str, Any]:
    parts = [tokens(field(usage, name)) for name in _INPUT_PARTS]
    uncached, cache_read, cache_write = parts
    total = None if uncached is None else sum(p or 0 for p in parts)
    return {
        "input_tokens": total,
        "cache_read_tokens": cache_read,
        "cache_write_tokens": cache_write,
        "output_tokens": tokens(field(usage, "output_tokens")),
    }


def read_message(call: Call, result: Any, kwargs: Mapping[str, Any]) -> None:
    model = field(result, "model")
    if isinstance(model, str):
        call.model = model
    request_id = getattr(result, "_request_id", None)
    if isinstance(request_id, str):
        call.request_id = request_id
    usage = field(result, "usage")
    if usage is None:
        call.unreported = True
    else:
        call.usage = message_usage(usage)


def observe_event(call: Call, event: Any) -> None:
    kind = field(event, "type")
    if kind == "message_start":
        read_message(call, field(event, "message"), {})
        call.unreported = not call.usage
    elif kind == "message_delta":
        call.usage = merged_usage(call.usage, field(event, "usage"))
        call.unreported = all(value is None for value in call.usage.values())


def merged_usage(seen: dict[str, Any], delta: Any) -> dict[str, Any]:
    """``message_delta`` counts are cumulative: each one it gives replaces the one seen before
    (the output always; the input side too when the API restates it), the others stay."""
    read, write = seen.get("cache_read_tokens"), seen.get("cache_write_tokens")
    total = seen.get("input_tokens")
    raw = {
        "input_tokens": None if total is None else total - (read or 0) - (write or 0),
        "cache_read_input_tokens": read,
        "cache_creation_input_tokens": write,
        "output_tokens": seen.get("output_tokens"),
    }
    for name in raw:
        value = tokens(field(delta, name))
        if value is not None:
            raw[name] = value
    return message_usage(raw)


_STREAMS = (anthropic.Stream, anthropic.AsyncStream)
CREATE = Spec(PROVIDER, "messages", read_message, observe_event, _STREAMS, "request-id")


class _StreamManager:
    """Stands in for the manager ``messages.stream(...)`` returns: the request is made, and timed,
    on entering it; the SDK's MessageStream then reads its events through our stream proxy, so
    ``get_final_message()``, ``text_stream`` and plain iteration are all seen."""

    def __init__(self, manager: Any, kwargs: Mapping[str, Any]) -> None:
        self._manager = manager
        self._kwargs = kwargs

    def _start(self) -> Call | None:
        call = start(CREATE, {**self._kwargs, "stream": True})
        if call is not None:
            call.unreported = True  # until message_start
        return call

    def _attach(self, call: Call, message_stream: Any, proxy: type) -> None:
        raw = message_stream._raw_stream
        guarded(stream_request_id, call, CREATE, raw)
        message_stream._raw_stream = proxy(raw, call, observe_event)

    def __enter__(self) -> Any:
        call = self._start()
        try:
            message_stream = self._manager.__enter__()
        except BaseException as exc:
            if call is not None:
                failed(call, exc)
            raise
        if call is not None:
            self._attach(call, message_stream, TrackedStream)
        return message_stream

    def __exit__(self, *exc_info: Any) -> Any:
        return self._manager.__exit__(*exc_info)

    async def __aenter__(self) -> Any:
        call = self._start()
        try:
            message_stream = await self._manager.__aenter__()
        except BaseException as exc:
            if call is not None:
                failed(call, exc)
            raise
        if call is not None:
            self._attach(call, message_stream, TrackedAsyncStream)
        return message_stream

    async def __aexit__(self, *exc_info: Any) -> Any:
        return await self._manager.__aexit__(*exc_info)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._manager, name)


def _wrap_stream_helper(messages: Any, policy: Policy) -> None:
    original = getattr(messages, "stream", None)
    if original is None or getattr(original, MARK, False):
        return

    def stream(*args: Any, **kwargs: Any) -> Any:
        enforce(policy, PROVIDER, kwargs)  # the request is only sent on entering the manager
        return _StreamManager(original(*args, **kwargs), kwargs)

    stream.__doc__ = original.__doc__
    setattr(stream, MARK, True)
    messages.stream = stream


def supports(client: object) -> bool:
    return isinstance(client, anthropic.Anthropic | anthropic.AsyncAnthropic)


def instrument(client: Any, policy: Policy) -> None:
    is_async = isinstance(client, anthropic.AsyncAnthropic)
    messages = client.messages
    wrap(messages, "create", CREATE, is_async, policy)
    wrap(messages, "parse", CREATE, is_async, policy)  # posts on its own, never through create
    _wrap_stream_helper(messages, policy)
