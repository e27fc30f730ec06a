"""The OTLP/HTTP endpoint, served for real (uvicorn on a free port) against SQLite and PostgreSQL:
the OTel SDK's own OTLP exporter and a Node-style JSON body send GenAI spans to it, and each lands
once as a call with its tokens and cost; refused requests change nothing."""

from __future__ import annotations

import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import uvicorn
from google.rpc.status_pb2 import Status
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status as SpanStatus
from opentelemetry.trace import StatusCode

from tests.conftest import add_test_prices, stored_calls
from tracking.client import Tracker
from tracking.config import build_settings
from tracking.db import make_engine
from tracking.migrate import upgrade
from tracking.otel_mapping import call_id
from tracking.otlp_receiver import Receiver
from tracking.otlp_server import build_app

FIXTURE = Path(__file__).parent / "fixtures" / "otlp_node_genai.json"
PROTOBUF = {"Content-Type": "application/x-protobuf"}
# gpt-4o at the test prices: 200 plain input at $2.50/M, 1000 cached at $1.25/M, 300 out at $10/M
COST_1200_1000_300 = Decimal("0.00475")


@dataclass
class Endpoint:
    url: str
    receiver: Receiver

    def flush(self) -> None:
        assert self.receiver.tracker.writer.flush(30)


def free_socket() -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextmanager
def serving(store_url: str, tmp_path: Path, **options) -> Iterator[Endpoint]:
    """The endpoint on a free port of 127.0.0.1, writing to ``store_url`` through its own
    tracker; stopped (and its writer flushed) at the end."""
    queue_size = options.pop("queue_size", None)
    settings = build_settings(
        store_url,
        journal_path=str(tmp_path / "otlp-journal.jsonl"),
        queue_size=queue_size,
        flush_interval=0.05,
    )
    receiver = Receiver(Tracker(settings))
    app = build_app(receiver, **options)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    sock = free_socket()
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:  # a readiness wait, not a timing: started is set once listening
        if not thread.is_alive():
            raise RuntimeError("the OTLP server did not start")
        threading.Event().wait(0.01)
    host, port = sock.getsockname()
    try:
        yield Endpoint(f"http://{host}:{port}/v1/traces", receiver)
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


@pytest.fixture
def endpoint(store_url: str, tmp_path: Path) -> Iterator[Endpoint]:
    add_test_prices(store_url)
    with serving(store_url, tmp_path) as found:
        yield found


def genai_spans(*usages: dict[str, object], service: str = "support-bot") -> list[ReadableSpan]:
    """Ended SDK spans as an instrumented OpenAI call makes them, one per usage, plus one plain
    HTTP span around them (not a GenAI span: to be ignored)."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("opentelemetry.instrumentation.openai_v2")
    with tracer.start_as_current_span("POST /chat") as outer:
        outer.set_attribute("http.request.method", "POST")
        for usage in usages:
            with tracer.start_as_current_span("chat gpt-4o") as span:
                span.set_attributes(
                    {
                        "gen_ai.operation.name": "chat",
                        "gen_ai.provider.name": "openai",
                        "gen_ai.request.model": "gpt-4o",
                        "gen_ai.response.model": "gpt-4o",
                        **usage,  # type: ignore[dict-item]
                    }
                )
                if usage.get("error.type"):
                    span.set_status(SpanStatus(StatusCode.ERROR, "boom"))
    provider.shutdown()
    return list(memory.get_finished_spans())


USAGE = {
    "gen_ai.usage.input_tokens": 1200,
    "gen_ai.usage.cache_read.input_tokens": 1000,
    "gen_ai.usage.output_tokens": 300,
    "user.id": "u_42",
}


def id_of(span: ReadableSpan):
    context = span.get_span_context()
    assert context is not None
    return call_id(context.trace_id, context.span_id)


def body_of(spans: list[ReadableSpan]) -> bytes:
    """The protobuf body the SDK's exporter sends for ``spans``."""
    return encode_spans(spans).SerializeToString()


def status_of(response: httpx.Response) -> Status:
    """The google.rpc.Status an error answer carries, in the request's encoding."""
    if response.headers["content-type"].startswith("application/json"):
        from google.protobuf import json_format

        return json_format.Parse(response.text, Status())
    return Status.FromString(response.content)


@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip])
def test_the_sdk_exporter_stores_each_genai_span_once(
    endpoint: Endpoint, store_url: str, compression: Compression
) -> None:
    spans = genai_spans(USAGE, {**USAGE, "gen_ai.usage.input_tokens": 2000, "user.id": "u_7"})
    exporter = OTLPSpanExporter(endpoint=endpoint.url, compression=compression)
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    assert exporter.export(spans) is SpanExportResult.SUCCESS  # exported twice: still one call
    endpoint.flush()
    found = {row.id: row for row in stored_calls(store_url)}
    genai = [s for s in spans if s.name.startswith("chat")]
    assert set(found) == {id_of(s) for s in genai}  # the HTTP span is no call
    first = found[id_of(genai[0])]
    assert (first.provider, first.model, first.operation) == ("openai", "gpt-4o", "chat")
    assert (first.user_id, first.feature, first.status) == ("u_42", "support-bot", "ok")
    assert (first.input_tokens, first.cache_read_tokens, first.output_tokens) == (1200, 1000, 300)
    assert first.cost_usd == COST_1200_1000_300
    second = found[id_of(genai[1])]
    assert (second.user_id, second.input_tokens) == ("u_7", 2000)
    assert second.cost_usd == Decimal("0.00675")  # 1000 plain, 1000 cached, 300 out


@pytest.mark.parametrize("gzipped", [False, True])
def test_a_node_style_json_body_is_stored_and_answered_in_json(
    endpoint: Endpoint, store_url: str, gzipped: bool
) -> None:
    body = FIXTURE.read_bytes()
    headers = {"Content-Type": "application/json"}
    if gzipped:
        body, headers = gzip.compress(body), {**headers, "Content-Encoding": "gzip"}
    for _ in range(2):
        answer = httpx.post(endpoint.url, content=body, headers=headers)
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith("application/json")
        assert answer.json() == {}  # no partial_success: nothing refused
    endpoint.flush()
    rows = stored_calls(store_url)
    trace = int("5b8efff798038103d269b633813fc60c", 16)
    assert [r.id for r in rows] == [
        call_id(trace, int("eee19b7ec3c1b174", 16)),
        call_id(trace, int("eee19b7ec3c1b175", 16)),
    ]
    ok, failed = rows
    assert (ok.input_tokens, ok.cache_read_tokens, ok.output_tokens) == (1200, 1000, 300)
    assert ok.cost_usd == COST_1200_1000_300
    assert (ok.user_id, ok.feature, ok.request_id) == ("u_42", "support-bot", "chatcmpl-node-1")
    assert ok.duration_ms == 1250
    assert ok.occurred_at.replace(tzinfo=None) == datetime(2025, 12, 2, 9, 40)  # UTC
    assert (failed.status, failed.error_type, failed.user_id) == ("error", "RateLimitError", "u_7")
    assert failed.cost_usd == Decimal("0.0002")  # 80 input tokens at $2.50/M


def test_a_refused_span_is_reported_and_the_others_stored(
    endpoint: Endpoint, store_url: str
) -> None:
    spans = genai_spans(USAGE, {**USAGE, "gen_ai.usage.output_tokens": -5})
    answer = httpx.post(endpoint.url, content=body_of(spans), headers=PROTOBUF)
    assert answer.status_code == 200
    partial = ExportTraceServiceResponse.FromString(answer.content).partial_success
    assert partial.rejected_spans == 1
    assert "output_tokens" in partial.error_message
    endpoint.flush()
    assert [r.id for r in stored_calls(store_url)] == [id_of(spans[0])]


def test_a_span_priced_beyond_what_the_store_holds_is_refused_and_the_others_stored(
    endpoint: Endpoint, store_url: str
) -> None:
    endpoint.receiver.tracker.writer.refresh_prices()  # priced as it is received
    huge = {**USAGE, "gen_ai.usage.input_tokens": 2**62}  # $11.5 trillion at $2.50/M
    spans = genai_spans(USAGE, huge)
    answer = httpx.post(endpoint.url, content=body_of(spans), headers=PROTOBUF)
    assert answer.status_code == 200
    partial = ExportTraceServiceResponse.FromString(answer.content).partial_success
    assert partial.rejected_spans == 1
    assert "cost_usd" in partial.error_message
    endpoint.flush()
    assert [r.id for r in stored_calls(store_url)] == [id_of(spans[0])]


def _zero_span_id() -> bytes:
    request = encode_spans(genai_spans(USAGE, USAGE))
    request.resource_spans[0].scope_spans[0].spans[1].span_id = b"\0" * 8
    return request.SerializeToString()


BAD_BODIES = {
    "protobuf that is not": (b"\xff\xff\xff", PROTOBUF, "protobuf"),
    "JSON that is not": (b"{resourceSpans", {"Content-Type": "application/json"}, "not JSON"),
    "a JSON id not in hex": (
        json.dumps(
            {"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "xyz", "spanId": "ab"}]}]}]}
        ).encode(),
        {"Content-Type": "application/json"},
        "hex",
    ),
    "gzip that is not": (
        b"plain",
        {**PROTOBUF, "Content-Encoding": "gzip"},
        "not gzip",
    ),
    "a good span beside one with a zero id": (_zero_span_id(), PROTOBUF, "span_id"),
}


@pytest.mark.parametrize("case", list(BAD_BODIES))
def test_a_bad_body_gets_400_with_the_reason_and_changes_nothing(
    endpoint: Endpoint, store_url: str, case: str
) -> None:
    body, headers, reason = BAD_BODIES[case]
    answer = httpx.post(endpoint.url, content=body, headers=headers)
    assert answer.status_code == 400
    assert reason in status_of(answer).message
    endpoint.flush()
    assert stored_calls(store_url) == []


def test_a_token_is_required_when_set(store_url: str, tmp_path: Path) -> None:
    add_test_prices(store_url)
    spans = genai_spans(USAGE)
    with serving(store_url, tmp_path, token="s3cret") as endpoint:
        for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": "s3cret"}):
            answer = httpx.post(endpoint.url, content=body_of(spans), headers=PROTOBUF | headers)
            assert answer.status_code == 401
            assert answer.headers["www-authenticate"] == "Bearer"
        unreadable = httpx.post(endpoint.url, content=b"x", headers={"Content-Type": "text/x"})
        assert unreadable.status_code == 401  # nothing is said of a request before its token
        endpoint.flush()
        assert stored_calls(store_url) == []
        exporter = OTLPSpanExporter(
            endpoint=endpoint.url, headers={"authorization": "Bearer s3cret"}
        )
        assert exporter.export(spans) is SpanExportResult.SUCCESS
        endpoint.flush()
    assert [r.id for r in stored_calls(store_url)] == [id_of(spans[0])]


def test_bodies_over_the_limit_get_413_as_sent_or_decompressed(
    store_url: str, tmp_path: Path
) -> None:
    spans = genai_spans(*[USAGE] * 20)
    body = body_of(spans)
    limit = len(body) - 1
    with serving(store_url, tmp_path, max_body_bytes=limit) as endpoint:
        answer = httpx.post(endpoint.url, content=body, headers=PROTOBUF)
        assert answer.status_code == 413
        assert f"{limit:,}" in status_of(answer).message
        packed = gzip.compress(body)
        assert len(packed) < limit  # small as sent, too large once decompressed
        answer = httpx.post(
            endpoint.url, content=packed, headers={**PROTOBUF, "Content-Encoding": "gzip"}
        )
        assert answer.status_code == 413
        assert "decompressed" in status_of(answer).message
        chunked = httpx.post(endpoint.url, content=iter([body[:100], body[100:]]), headers=PROTOBUF)
        assert chunked.status_code == 413  # no Content-Length: counted as it arrives
        endpoint.flush()
        assert stored_calls(store_url) == []
        answer = httpx.post(endpoint.url, content=body_of(spans[:1]), headers=PROTOBUF)
        assert answer.status_code == 200
        endpoint.flush()
    assert len(stored_calls(store_url)) == 1


def test_a_full_queue_answers_503_to_retry_and_queues_none(store_url: str, tmp_path) -> None:
    spans = genai_spans(USAGE, USAGE)
    with serving(store_url, tmp_path, queue_size=1) as endpoint:
        answer = httpx.post(endpoint.url, content=body_of(spans), headers=PROTOBUF)
        assert answer.status_code == 503
        assert answer.headers["retry-after"] == "1"
        endpoint.flush()
        assert stored_calls(store_url) == []


def test_other_media_types_get_415(endpoint: Endpoint) -> None:
    answer = httpx.post(endpoint.url, content=b"x", headers={"Content-Type": "text/plain"})
    assert answer.status_code == 415
    assert "application/x-protobuf" in status_of(answer).message


def test_the_command_serves_until_stopped_and_writes_what_it_received(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'otlp.db'}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    add_test_prices(url)
    sock = free_socket()  # a free port, let go just before the command binds it
    port = sock.getsockname()[1]
    sock.close()
    env = {**os.environ, "UNITWISE_OTLP_TOKEN": "t0ken", "UNITWISE_DATA_DIR": str(tmp_path)}
    command = [sys.executable, "-m", "tracking", "otlp", "--url", url, "--port", str(port)]
    server = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        banner = server.stdout.readline()
        assert f"http://127.0.0.1:{port}/v1/traces" in banner
        assert "UNITWISE_OTLP_TOKEN" in banner
        spans = genai_spans(USAGE)
        exporter = OTLPSpanExporter(
            endpoint=f"http://127.0.0.1:{port}/v1/traces",
            headers={"authorization": "Bearer t0ken"},
        )
        # the exporter retries a refused connection with backoff while uvicorn starts
        assert exporter.export(spans) is SpanExportResult.SUCCESS
    finally:
        server.send_signal(signal.SIGINT)
        assert server.wait(60) == 0
    (row,) = stored_calls(url)
    assert (row.id, row.cost_usd, row.feature) == (
        id_of(spans[0]),
        COST_1200_1000_300,
        "support-bot",
    )


def test_import_tracking_loads_none_of_the_endpoint_s_dependencies() -> None:
    code = (
        "import sys, tracking, tracking.cli\n"
        "heavy = ('starlette', 'uvicorn', 'opentelemetry', 'google')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
