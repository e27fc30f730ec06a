"""Replace one method of one SDK resource object with a timed, logged version of itself.

Only the given client's resource objects change (an instance attribute shadows the class's
method); the SDK's classes, and clients never instrumented, stay as they were.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tracking import client as _client
from tracking.integrations._call import Call, guarded, internal_error
from tracking.integrations._policy import Policy, enforce
from tracking.integrations._stream import Observe, TrackedAsyncStream, TrackedStream

MARK = "__unitwise_instrumented__"


@dataclass(frozen=True)
class Spec:
    """How to log one SDK method: names, and how to read usage from its result or stream."""

    provider: str
    operation: str
    read: Callable[[Call, Any, Mapping[str, Any]], None]  # fills model, usage, request id
    observe: Observe | None = None  # reads one streamed item
    stream_types: tuple[type, ...] = field(default=())  # the SDK's stream classes
    request_header: str = "x-request-id"  # where a stream's request id is


def wrap(owner: object, name: str, spec: Spec, is_async: bool, policy: Policy) -> None:
    """Wrap ``owner.name`` once (wrapping an already wrapped method does nothing)."""
    original = getattr(owner, name, None)
    if original is None or getattr(original, MARK, False):
        return
    make = async_wrapper if is_async else sync_wrapper
    wrapper = make(original, spec, policy)
    setattr(wrapper, MARK, True)
    setattr(owner, name, wrapper)


def start(spec: Spec, kwargs: Mapping[str, Any]) -> Call | None:
    """A new call, or None when tracking is off (the SDK call then runs untouched)."""
    if _client.get() is None:
        return None
    return Call(spec.provider, spec.operation, kwargs.get("model"), bool(kwargs.get("stream")))


def failed(call: Call, exc: BaseException) -> None:
    guarded(call.failed, exc)
    call.finish()


def returned(call: Call, spec: Spec, result: Any, kwargs: Mapping[str, Any], is_async: bool) -> Any:
    """The host's result, or for a stream the proxy that logs the call when the stream ends.
    Should tracking fail here, the host still gets its result as the SDK made it."""
    try:
        if spec.observe is not None and isinstance(result, spec.stream_types):
            call.unreported = True  # until the stream shows its usage
            guarded(stream_request_id, call, spec, result)
            proxy = TrackedAsyncStream if is_async else TrackedStream
            return proxy(result, call, spec.observe)
        answer = result
        # a dict look-up: hasattr on an SDK model would go through pydantic's slow __getattr__
        if "http_response" in getattr(result, "__dict__", ()):
            answer = raw_answer(call, spec, result.http_response)
        guarded(spec.read, call, answer, kwargs)
        call.finish()
    except Exception as exc:
        internal_error(exc)
    return result


def raw_answer(call: Call, spec: Spec, response: Any) -> Any:
    """``with_raw_response``: the host parses the answer itself, when it likes; we read the JSON
    body the SDK has already received (a binary or unread body gives None: usage unreported)."""
    header_request_id(call, spec, getattr(response, "headers", None))
    try:
        return response.json()
    except Exception:
        return None


def stream_request_id(call: Call, spec: Spec, stream: Any) -> None:
    header_request_id(call, spec, getattr(getattr(stream, "response", None), "headers", None))


def header_request_id(call: Call, spec: Spec, headers: Any) -> None:
    request_id = headers.get(spec.request_header) if headers is not None else None
    if isinstance(request_id, str):
        call.request_id = request_id


def sync_wrapper(original: Callable[..., Any], spec: Spec, policy: Policy) -> Callable[..., Any]:
    @functools.wraps(original)
    def instrumented(*args: Any, **kwargs: Any) -> Any:
        enforce(policy, spec.provider, kwargs)
        call = start(spec, kwargs)
        if call is None:
            return original(*args, **kwargs)
        try:
            result = original(*args, **kwargs)
        except BaseException as exc:
            failed(call, exc)
            raise
        return returned(call, spec, result, kwargs, is_async=False)

    return instrumented


def async_wrapper(original: Callable[..., Any], spec: Spec, policy: Policy) -> Callable[..., Any]:
    @functools.wraps(original)
    async def instrumented(*args: Any, **kwargs: Any) -> Any:
        enforce(policy, spec.provider, kwargs)
        call = start(spec, kwargs)
        if call is None:
            return await original(*args, **kwargs)
        try:
            result = await original(*args, **kwargs)
        except BaseException as exc:
            failed(call, exc)
            raise
        return returned(call, spec, result, kwargs, is_async=True)

    return instrumented
