"""A span processor for services already on the OpenTelemetry SDK: each GenAI span is a call.

    from opentelemetry.sdk.trace import TracerProvider
    import tracking.otel
    provider.add_span_processor(tracking.otel.SpanProcessor())

It reads each ended span the instrumentations emit (OpenLLMetry, the official
``opentelemetry-instrumentation-openai-v2``, and any other following the GenAI conventions) through
``tracking.otel_mapping`` and hands the call to ``tracking.record``'s path: validated, priced and
queued on the thread that ended the span, written by tracking's own writer thread. No I/O here,
and nothing raised into the host. Other spans are passed over in under a microsecond.

This module imports ``opentelemetry-sdk`` (the ``otel`` extra), so ``import tracking`` never
imports it: import ``tracking.otel`` where the provider is set up.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk import trace as sdk_trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import StatusCode

from tracking import client as _client
from tracking import context
from tracking.integrations._call import internal_error
from tracking.otel_mapping import (
    DEFAULT_FEATURE_ATTRIBUTE,
    SpanData,
    genai_attributes,
    genai_kwargs,
)

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
        self._resource: Resource | None = None
        self._resource_dict: Mapping[str, Any] = {}

    def on_start(self, span: sdk_trace.Span, parent_context: Context | None = None) -> None:
        """Nothing to do until the span ends: its usage is set last."""

    def on_end(self, span: sdk_trace.ReadableSpan) -> None:
        if self._shut:
            return
        try:
            attributes = attributes_of(span)
            if not attributes or not genai_attributes(attributes):
                return
            tracker = _client.get()
            if tracker is None:  # tracking is off
                return
            fields = self._fields(span, attributes)
        except Exception as exc:
            internal_error(exc)  # a span shaped as no emitter's: tracking's problem, not the host's
            return
        # validated, priced and queued as any recorded call; a refusal is counted, not raised
        tracker.record(fields.pop("provider"), fields.pop("model"), fields)

    def _fields(self, span: sdk_trace.ReadableSpan, attributes: Any) -> dict[str, Any]:
        """The call's fields (``genai_kwargs``) from the SDK span's own parts, with a
        ``tracking.attribute()`` block's user and feature winning over the span's."""
        span_context = span.context
        start = span.start_time or 0
        fields = genai_kwargs(
            attributes,
            self._resource_attributes(span.resource),
            span_context.trace_id if span_context is not None else 0,
            span_context.span_id if span_context is not None else 0,
            start,
            span.end_time or start,
            span.status.status_code is StatusCode.ERROR,
            self.feature_attribute,
        )
        attribution = context.current()
        if attribution.user_id is not None:
            fields.pop("user_id", None)
        if attribution.feature is not None:
            fields.pop("feature", None)
        return fields

    def _resource_attributes(self, resource: Resource) -> Mapping[str, Any]:
        """The resource's attributes as a dict, made once: a provider's spans share one."""
        if resource is not self._resource:
            self._resource_dict = dict(resource.attributes)
            self._resource = resource
        return self._resource_dict

    def shutdown(self) -> None:
        """Spans ended after the provider's shutdown are no calls, as with the SDK's own
        processors; tracking's writer flushes at exit on its own, so nothing waits here."""
        self._shut = True

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Write the calls queued so far (``tracking.flush``), as the provider's flush asks."""
        return _client.flush(timeout_millis / 1000)


def attributes_of(span: sdk_trace.ReadableSpan) -> Mapping[str, Any]:
    """The span's attributes as a plain dict. ``span.attributes`` is a read-only view of the SDK's
    ``BoundedAttributes``, whose every missing key raises a KeyError inside: probing its twenty
    names cost 6 µs a span. An ended span's attributes are frozen, so the dict the SDK keeps
    them in is read as it is (``_dict``); should the SDK keep them otherwise, they are copied."""
    inner = getattr(getattr(span, "_attributes", None), "_dict", None)
    if type(inner) is dict:
        return inner
    return dict(span.attributes or _NO_ATTRIBUTES)


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
        attributes=attributes_of(span),
        resource=dict(span.resource.attributes),
        scope_name=scope.name if scope is not None else None,
        error=status.status_code is StatusCode.ERROR,
        status_message=status.description,
    )
