"""Span processor overhead: the host thread's time in ``SpanProcessor.on_end``, median microseconds.

Each span is a real ended SDK span carrying what OpenLLMetry's OpenAI instrumentation sets on a
chat call (cached prompt tokens included), each with its own trace and span ids. Beside it, in
the same run, each timed one call at a time (``perf_counter_ns``):

- the SDK's own ``BatchSpanProcessor.on_end`` for the same spans (an exporter that does nothing),
  what any exporting service already pays per span;
- ``tracking.record`` with the fields the mapping gives for such a span, made beforehand;
- ``SpanProcessor.on_end`` for a span that is no GenAI call (an HTTP server span).

The four take turns in rounds of 500 calls, so drift in the machine's load falls on all alike.
The spans are made beforehand, and the calls run back to back, as ``bench.overhead`` times
``tracking.record``; with ``--fresh`` each span is ended just before its call (untimed), as in a
host, whose own work between two calls pushes tracking's code and data out of the CPU's caches.
The writer runs against a fresh PostgreSQL database with the prices loaded. Goal: at most 15 µs.

    python -m bench.otel [--spans 20000] [--fresh]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

import tracking
from bench.common import finish_tracking, fresh_pg, start_tracking
from bench.overhead import report
from tracking.otel import SpanProcessor, span_data
from tracking.otel_mapping import call_kwargs

# what OpenLLMetry 0.62.4 sets on a chat span (tests/test_otel.py drives it for real)
CHAT_SPAN = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o",
    "gen_ai.is_streaming": False,
    "gen_ai.openai.api_base": "https://api.openai.com/v1",
    "gen_ai.response.model": "gpt-4o-2024-08-06",
    "gen_ai.response.id": "chatcmpl-AbC123",
    "gen_ai.response.finish_reasons": ("stop",),
    "gen_ai.openai.response.system_fingerprint": "fp_50cad350e4",
    "gen_ai.usage.total_tokens": 1500,
    "gen_ai.usage.output_tokens": 300,
    "gen_ai.usage.input_tokens": 1200,
    "gen_ai.usage.cache_read.input_tokens": 1000,
    "gen_ai.usage.reasoning_tokens": 100,
}
HTTP_SPAN = {
    "http.request.method": "POST",
    "url.path": "/v1/summaries",
    "http.route": "/v1/summaries",
    "http.response.status_code": 200,
    "server.address": "api.example.com",
}
ROUND = 500
RECORD = "tracking.record, same fields"
GENAI = "SpanProcessor.on_end, GenAI span"


class NoExport(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def span_maker(attributes: dict[str, Any]) -> Callable[[], ReadableSpan]:
    """Ended spans of a provider with no processor, one per call, each new to the store."""
    provider = TracerProvider(resource=Resource.create({"service.name": "summarizer"}))
    tracer = provider.get_tracer("opentelemetry.instrumentation.openai.v1")

    def ended() -> ReadableSpan:
        span = tracer.start_span("openai.chat", attributes=attributes)
        span.end()
        return span  # type: ignore[return-value]  # an ended SDK Span is a ReadableSpan

    return ended


Case = tuple[Callable[[], Any], Callable[[Any], object]]  # (make the argument, the timed call)


def alternate(cases: dict[str, Case], n: int, fresh: bool) -> dict[str, list[int]]:
    """Each case timed call by call, the cases taking turns every ``ROUND`` calls. The calls'
    arguments are made beforehand; ``fresh``: each just before its call (untimed), as a host
    ends a span just before the processor sees it."""
    made = {
        name: None if fresh else [make() for _ in range(n)] for name, (make, _) in cases.items()
    }
    samples: dict[str, list[int]] = {name: [] for name in cases}
    clock = time.perf_counter_ns
    for start in range(0, n, ROUND):
        for name, (make, call) in cases.items():
            found = samples[name]
            ready = made[name]
            for i in range(start, min(start + ROUND, n)):
                arg = make() if ready is None else ready[i]
                began = clock()
                call(arg)
                found.append(clock() - began)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spans", type=int, default=20_000)
    parser.add_argument("--fresh", action="store_true", help="end each span just before")
    args = parser.parse_args()
    n = args.spans
    with fresh_pg() as url, tempfile.TemporaryDirectory() as tmp:
        start_tracking(url, tmp, queue_size=8 * n)
        ours = SpanProcessor()
        theirs = BatchSpanProcessor(NoExport(), max_queue_size=4 * n)
        chat, http = span_maker(CHAT_SPAN), span_maker(HTTP_SPAN)
        for _ in range(2000):  # warm-up
            ours.on_end(chat())

        def fields() -> dict[str, Any]:
            return call_kwargs(span_data(chat())) or {}

        samples = alternate(
            {
                "BatchSpanProcessor.on_end (SDK)": (chat, theirs.on_end),
                RECORD: (fields, lambda found: tracking.record(**found)),
                GENAI: (chat, ours.on_end),
                "SpanProcessor.on_end, HTTP span": (http, ours.on_end),
            },
            n,
            args.fresh,
        )
        for name, found in samples.items():
            report(name, found)
        medians = {name: statistics.median(found) / 1000 for name, found in samples.items()}
        extra = medians[GENAI] - medians[RECORD]
        print(f"on_end beyond record: {extra:.1f} µs")
        theirs.shutdown()
        finish_tracking()


if __name__ == "__main__":
    main()
