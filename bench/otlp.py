"""OTLP: GenAI spans per second received by ``python -m tracking otlp`` and stored on PostgreSQL.

The real command runs in its own process; this one posts protobuf export requests to it over
keep-alive connections (bodies serialised up front, ``--spans-per-request`` spans each, 512 by
default as the SDK's BatchSpanProcessor sends them), from two threads, and polls the store until
every span is a row of ``calls``. Timed: from the first request sent to the last row counted.

Beside it, in the same run and alternating with it: a raw COPY of the same rows (ids, tokens,
costs) into the same partitioned, indexed table, as in ``bench.ingest`` (the floor), and the
writer alone taking the same calls already built and priced (``bench.ingest``'s writer figure:
what the endpoint's own decoding and mapping add to). CPU time per span of the server process,
and per call of the writer alone, are printed beside the rates: on this shared machine they
move less with the other processes' load than the rates do.

    python -m bench.otlp [--spans 200000] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import queue
import random
import subprocess
import sys
import threading
import time
from collections import defaultdict

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from sqlalchemy import func, select

from bench.common import fresh_pg, make_events, price_events
from bench.ingest import raw_copy_rate, writer_rate
from tracking.db import make_engine
from tracking.events import CallEvent
from tracking.otel_mapping import call_id
from tracking.schema import calls

HEADERS = {"Content-Type": "application/x-protobuf"}


def _kv(key: str, value: str | int) -> KeyValue:
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def span_of(event: CallEvent, rng: random.Random) -> Span:
    """The span an instrumented client would emit for ``event`` (which takes the span's id)."""
    trace_id, span_id = rng.getrandbits(128) | 1, rng.getrandbits(64) | 1
    event.id = call_id(trace_id, span_id)
    event.tags = None  # attributes other than the mapped ones are not kept
    event.operation, event.requested_model = "chat", event.model
    start = int(event.occurred_at.timestamp()) * 1_000_000_000
    event.occurred_at = event.occurred_at.replace(microsecond=0)
    attributes = [
        _kv("gen_ai.operation.name", "chat"),
        _kv("gen_ai.provider.name", event.provider),
        _kv("gen_ai.request.model", event.model),
        _kv("gen_ai.response.model", event.model),
        _kv("gen_ai.usage.input_tokens", event.input_tokens or 0),
        _kv("gen_ai.usage.output_tokens", event.output_tokens or 0),
        _kv("user.id", event.user_id or ""),
    ]
    if event.cache_read_tokens:
        attributes.append(_kv("gen_ai.usage.cache_read.input_tokens", event.cache_read_tokens))
    return Span(
        trace_id=trace_id.to_bytes(16, "big"),
        span_id=span_id.to_bytes(8, "big"),
        name=f"chat {event.model}",
        kind=Span.SPAN_KIND_CLIENT,
        start_time_unix_nano=start,
        end_time_unix_nano=start + (event.duration_ms or 0) * 1_000_000,
        attributes=attributes,
    )


def bodies_of(events: list[CallEvent], per_request: int) -> list[bytes]:
    """Export requests of ``per_request`` spans: one resource per feature (``service.name``)."""
    rng = random.Random(7)
    bodies = []
    for i in range(0, len(events), per_request):
        by_feature: dict[str, list[Span]] = defaultdict(list)
        for event in events[i : i + per_request]:
            by_feature[event.feature or ""].append(span_of(event, rng))
        request = ExportTraceServiceRequest()
        for feature, spans in by_feature.items():
            resource_spans = request.resource_spans.add()
            resource_spans.resource.attributes.append(_kv("service.name", feature))
            scope_spans = resource_spans.scope_spans.add()
            scope_spans.scope.name = "opentelemetry.instrumentation.openai_v2"
            scope_spans.spans.extend(spans)
        bodies.append(request.SerializeToString())
    return bodies


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(url: str, port: int, journal: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "tracking", "otlp", "--url", url, "--port", str(port)]
    command += ["--journal", journal]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=dict(os.environ))
    assert server.stdout is not None
    server.stdout.readline()  # the banner: printed just before uvicorn binds the port
    for _ in range(500):
        try:
            httpx.post(f"http://127.0.0.1:{port}/v1/traces", content=b"", headers=HEADERS)
            return server
        except httpx.TransportError:
            time.sleep(0.01)
    raise RuntimeError("the OTLP server did not start")


def post_all(endpoint: str, bodies: list[bytes], senders: int) -> int:
    """Send every body (a 503 is sent again, as exporters do); the number of 503s."""
    todo: queue.Queue[bytes] = queue.Queue()
    for body in bodies:
        todo.put(body)
    busy = [0]
    failures: list[str] = []

    def send() -> None:
        with httpx.Client(timeout=60) as client:
            while True:
                try:
                    body = todo.get_nowait()
                except queue.Empty:
                    return
                while True:
                    answer = client.post(endpoint, content=body, headers=HEADERS)
                    if answer.status_code != 503:
                        break
                    busy[0] += 1
                    time.sleep(0.05)
                if answer.status_code != 200 or answer.content:
                    failures.append(f"{answer.status_code} {answer.content[:200]!r}")

    threads = [threading.Thread(target=send) for _ in range(senders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, failures[:3]
    return busy[0]


def truncate(url: str) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "TRUNCATE calls, call_ids, daily_rollups, daily_feature_model_rollups,"
            " daily_user_rollups"
        )
    engine.dispose()


def cpu_seconds(pid: int) -> float:
    """User and system CPU a process has used so far (Linux: /proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def otlp_rate(url: str, bodies: list[bytes], n: int, journal: str) -> tuple[float, int, float]:
    """Spans per second from the first request sent to the n-th row stored; the 503s; and the
    server's CPU per span in µs (the machine's load slows it less than it slows the rate)."""
    truncate(url)
    engine = make_engine(url)
    port = free_port()
    server = start_server(url, port, journal)
    try:
        cpu_before = cpu_seconds(server.pid)
        started = time.perf_counter()
        busy = post_all(f"http://127.0.0.1:{port}/v1/traces", bodies, senders=2)
        count = select(func.count()).select_from(calls)
        while True:
            with engine.connect() as conn:
                stored = conn.execute(count).scalar_one()
            if stored >= n:
                break
            time.sleep(0.02)
        elapsed = time.perf_counter() - started
        cpu = cpu_seconds(server.pid) - cpu_before
    finally:
        server.terminate()
        server.wait(60)
        engine.dispose()
    assert stored == n, (stored, n)
    return n / elapsed, busy, cpu / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spans", type=int, default=200_000)
    parser.add_argument("--spans-per-request", type=int, default=512)
    parser.add_argument("--runs", type=int, default=3, help="alternating OTLP / raw COPY runs")
    args = parser.parse_args()
    events = make_events(args.spans)
    bodies = bodies_of(events, args.spans_per_request)
    import tempfile

    with fresh_pg() as url, tempfile.TemporaryDirectory() as tmp:
        price_events(url, events)
        print(f"spans: {args.spans:,} in {len(bodies):,} requests of {args.spans_per_request}")
        for run in range(1, args.runs + 1):
            rate, busy, cpu = otlp_rate(url, bodies, args.spans, f"{tmp}/journal-{run}.jsonl")
            raw = raw_copy_rate(url, events)
            truncate(url)
            cpu_before = time.process_time()
            writer = writer_rate(url, events, f"{tmp}/writer-{run}.jsonl", connections=2)
            writer_cpu = (time.process_time() - cpu_before) / len(events) * 1e6
            print(
                f"run {run}: OTLP -> PostgreSQL {rate:7,.0f} spans/s ({busy} 503s, "
                f"{cpu:.1f} µs CPU/span) | writer alone {writer:7,.0f} calls/s "
                f"({writer_cpu:.1f} µs CPU/call) | raw COPY (same rows) {raw:7,.0f} rows/s"
                f" | OTLP / writer {rate / writer:4.0%}, / COPY {rate / raw:4.0%}"
            )


if __name__ == "__main__":
    main()
