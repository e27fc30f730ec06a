"""What the OTLP endpoint does with one export request: its GenAI spans become calls, through
the same mapping as the span processor and the same tracker and writer as ``tracking.record``.

All or nothing per request for the body itself (a span with a malformed id refuses the whole
request before anything is queued); span by span for the calls (a GenAI span whose values
``record`` refuses is counted in ``partial_success`` with its reason, the others are stored).
Spans that are not GenAI spans are ignored, as the issue asks, and are not refusals.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tracking.client import Tracker
from tracking.events import CallEvent
from tracking.otel_mapping import call_kwargs
from tracking.otlp_decode import spans_of

SHOWN_REFUSALS = 3  # reasons quoted in partial_success.error_message; the count has them all


class Busy(Exception):
    """The writer's queue has no room for the request's calls: answered 503, the exporter
    retries later (OTLP exporters retry 503 with backoff), and nothing was queued."""


@dataclass
class Outcome:
    """What became of a request's spans."""

    stored: int = 0
    ignored: int = 0
    refused: list[str] = field(default_factory=list)

    def response(self) -> ExportTraceServiceResponse:
        """The OTLP answer: ``partial_success`` set only when some spans were refused."""
        response = ExportTraceServiceResponse()
        if self.refused:
            shown = "; ".join(self.refused[:SHOWN_REFUSALS])
            more = len(self.refused) - SHOWN_REFUSALS
            if more > 0:
                shown += f"; and {more} more"
            response.partial_success.rejected_spans = len(self.refused)
            response.partial_success.error_message = shown
        return response


class Receiver:
    """Turns export requests into calls on ``tracker`` (its own, not the host's global one)."""

    def __init__(self, tracker: Tracker, feature_attribute: str | None = None) -> None:
        self.tracker = tracker
        self.feature_attribute = feature_attribute

    def receive(self, request: ExportTraceServiceRequest) -> Outcome:
        """Queue the request's GenAI spans as calls (``BadBody`` or ``Busy``: none queued)."""
        outcome = Outcome()
        events: list[CallEvent] = []
        build = self.tracker.build
        for span in list(spans_of(request)):  # every id checked before anything is queued
            kwargs = call_kwargs(span, self.feature_attribute)
            if kwargs is None:
                outcome.ignored += 1
                continue
            provider = kwargs.pop("provider")
            model = kwargs.pop("model")
            try:
                events.append(build(provider, model, kwargs))
            except ValueError as exc:
                outcome.refused.append(f"span {span.span_id:016x}: {exc}")
        writer = self.tracker.writer
        if events and writer.room() < len(events):
            raise Busy(f"the writer's queue is full ({writer.settings.queue_size:,} calls)")
        if outcome.refused:  # counted once: a request answered Busy is sent again
            self.tracker.counters.add("rejected", len(outcome.refused))
        for event in events:
            try:
                self.tracker.emit(event)
            except ValueError as exc:  # priced beyond what the store holds
                outcome.refused.append(f"call {event.id}: {exc}")
                self.tracker.counters.add("rejected")
            else:
                outcome.stored += 1
        return outcome

    def close(self, timeout: float) -> bool:
        """Write what is queued (journal what cannot be) and stop the writer."""
        return self.tracker.writer.shutdown(timeout)
