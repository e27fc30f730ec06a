"""A span processor for services already on the OpenTelemetry SDK: each GenAI span is a call.

    from opentelemetry.sdk.trace import TracerProvider
    import tracking.otel
    provider.add_span_processor(tracking.otel.SpanProcessor())

It reads each ended span the instrumentations emit (OpenLLMetry, the official
``opentelemetry-instrumentation-openai-v2``, and any other following the GenAI conventions) through
``tracking.otel_mapping`` and hands the call to ``tracking.record``'s path: validated, priced and
queued on the thread that ended the span, written by tracking's own writer thread. No I/O here,
and nothing raised into the host. Other spans are passed over at the cost of a key lookup.

This module imports ``opentelemetry-sdk`` (the ``otel`` extra), so ``import tracking`` never
imports it: import ``tracking.otel`` where the provider is set up.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk import trace as sdk_trace
from opentelemetry.trace import StatusCode

from tracking import client as _client
from tracking import context
from tracking.integrations._call import internal_error
from tracking.otel_mapping import DEFAULT_FEATURE_ATTRIBUTE, SpanData, call_kwargs, is_genai

__all__ = ["SpanProcessor", "span_data"]

_NO_ATTRIBUTES: dict[str, object] = {}


class SpanProcessor(sdk_trace.SpanProcessor):
    """Records one call per ended GenAI span; add it with ``provider.add_span_processor``.

    ``feature_attribute`` names the span or resource attribute read as the call's feature
    (``service.name`` by default). A ``tracking.attribute()`` block around the call wins over the
    span's own user and feature, as it does for every tracked call; ``user.id`` and
    ``enduser.id`` are read where no block names a user. A span exported twice (ended twice, or
    seen by a second provider) is one call: its id comes from the trace and span ids.
    """

    def __init__(self, feature_attribute: str = DEFAULT_FEATURE_ATTRIBUTE) -> None:
        self.feature_attribute = feature_attribute
        self._shut = False

    def on_start(self, span: sdk_trace.Span, parent_context: Context | None = None) -> None:
        """Nothing to do until the span ends: its usage is set last."""

    def on_end(self, span: sdk_trace.ReadableSpan) -> None:
        if self._shut or _client.get() is None:  # shut down, or tracking is off
            return
        try:
            kwargs = self._kwargs(span)
        except Exception as exc:  # a span shaped as no emitter should: tracking's problem
            internal_error(exc)
            return
        if kwargs is not None:
            _client.record(**kwargs)  # validates, prices, queues; refusals counted, not raised

    def _kwargs(self, span: sdk_trace.ReadableSpan) -> dict[str, Any] | None:
        data = span_data(span)
        if not is_genai(data):
            return None
        kwargs = call_kwargs(data, self.feature_attribute)
        if kwargs is not None:
            attribution = context.current()
            if attribution.user_id is not None:
                kwargs.pop("user_id", None)
            if attribution.feature is not None:
                kwargs.pop("feature", None)
        return kwargs

    def shutdown(self) -> None:
        """Spans ended after the provider's shutdown are no calls, as with the SDK's own
        processors; tracking's writer flushes at exit on its own, so nothing waits here."""
        self._shut = True

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Write the calls queued so far (``tracking.flush``), as the provider's flush asks."""
        return _client.flush(timeout_millis / 1000)


def span_data(span: sdk_trace.ReadableSpan) -> SpanData:
    """The mapping's view of an SDK span."""
    span_context = span.context
    status = span.status
    scope = span.instrumentation_scope
    start = span.start_time or 0
    return SpanData(
        trace_id=span_context.trace_id if span_context is not None else 0,
        span_id=span_context.span_id if span_context is not None else 0,
        name=span.name,
        start_ns=start,
        end_ns=span.end_time or start,
        attributes=span.attributes or _NO_ATTRIBUTES,
        resource=span.resource.attributes,
        scope_name=scope.name if scope is not None else None,
        error=status.status_code is StatusCode.ERROR,
        status_message=status.description,
    )
