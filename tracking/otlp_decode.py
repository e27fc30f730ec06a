"""OTLP trace bodies to ``SpanData``: protobuf or JSON, plain or gzip, into the official
``opentelemetry-proto`` messages (never parsed by hand), then into the mapping's plain spans.

OTLP's JSON is protobuf's JSON mapping with two differences (the OTLP specification, "JSON
Protobuf Encoding"): trace and span ids are hex strings, not base64, and field names may be
lowerCamelCase or the proto's own. Both are handled before ``json_format`` reads the body.
Receivers must ignore fields they do not know, so unknown fields are no error.

Every failure is a ``BadBody`` saying what was wrong: the endpoint answers it as a 400.
"""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from collections.abc import Iterable, Iterator
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Status

from tracking.otel_mapping import SpanData

PROTOBUF = "application/x-protobuf"
JSON = "application/json"

# the JSON keys whose values are ids: hex in OTLP JSON, base64 in protobuf's JSON mapping
_ID_KEYS = frozenset({"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"})
_ERROR = Status.STATUS_CODE_ERROR


class BadBody(ValueError):
    """A body the endpoint cannot read; the message says why (it is sent back with the 400)."""


class TooLarge(BadBody):
    """A body over the size limit, before or after decompression (answered with a 413)."""


def media_type(content_type: str | None) -> str:
    """``PROTOBUF`` or ``JSON`` from a Content-Type header (parameters ignored)."""
    kind = (content_type or "").split(";")[0].strip().lower()
    if kind in (PROTOBUF, "application/protobuf"):
        return PROTOBUF
    if kind == JSON:
        return JSON
    raise BadBody(f"Content-Type {content_type!r}: send {PROTOBUF} or {JSON}")


def gunzip(body: bytes, limit: int) -> bytes:
    """The body a ``Content-Encoding: gzip`` request carried, refused past ``limit`` bytes
    (read no further than that: a small bomb must not fill the memory)."""
    inflate = zlib.decompressobj(wbits=31)
    try:
        data = inflate.decompress(body, limit + 1)
    except zlib.error as exc:
        raise BadBody(f"Content-Encoding gzip: the body is not gzip data ({exc})") from None
    if len(data) > limit:
        raise TooLarge(f"the body is over {limit:,} bytes once decompressed")
    if not inflate.eof:
        raise BadBody("Content-Encoding gzip: the gzip data is cut short")
    return data


def parse_request(body: bytes, kind: str) -> ExportTraceServiceRequest:
    """An ExportTraceServiceRequest from a body of ``kind`` (``PROTOBUF`` or ``JSON``)."""
    request = ExportTraceServiceRequest()
    if kind == PROTOBUF:
        try:
            request.ParseFromString(body)
        except DecodeError as exc:
            raise BadBody(f"not an OTLP ExportTraceServiceRequest in protobuf: {exc}") from None
        return request
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadBody(f"not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise BadBody("OTLP JSON must be an object with resourceSpans")
    try:
        json_format.ParseDict(_ids_to_base64(document), request, ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        raise BadBody(f"not an OTLP ExportTraceServiceRequest in JSON: {exc}") from None
    return request


def _ids_to_base64(node: Any) -> Any:
    """The document with every hex id rewritten as the base64 ``json_format`` reads."""
    if isinstance(node, list):
        return [_ids_to_base64(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key in _ID_KEYS and isinstance(value, str):
            try:
                value = base64.b64encode(bytes.fromhex(value)).decode()
            except ValueError:
                raise BadBody(f"{key} {value!r}: OTLP JSON ids are hex strings") from None
        elif isinstance(value, dict | list):
            value = _ids_to_base64(value)
        out[key] = value
    return out


def spans_of(request: ExportTraceServiceRequest) -> Iterator[SpanData]:
    """Every span of the request, with its resource's and scope's attributes beside it."""
    for resource_spans in request.resource_spans:
        resource = attributes_of(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            scope_name = scope_spans.scope.name or None
            for span in scope_spans.spans:
                yield SpanData(
                    trace_id=_id("trace_id", span.trace_id, 16),
                    span_id=_id("span_id", span.span_id, 8),
                    name=span.name,
                    start_ns=span.start_time_unix_nano,
                    end_ns=span.end_time_unix_nano,
                    attributes=attributes_of(span.attributes),
                    resource=resource,
                    scope_name=scope_name,
                    error=span.status.code == _ERROR,
                    status_message=span.status.message or None,
                )


def _id(name: str, raw: bytes, size: int) -> int:
    found = int.from_bytes(raw, "big")
    if len(raw) != size or not found:
        shown = binascii.hexlify(raw).decode() or "empty"
        raise BadBody(f"{name} {shown}: a span's {name} is {size} bytes, not all zero")
    return found


# the AnyValue kinds read as they are (the others: value_of)
_SCALARS = frozenset({"string_value", "int_value", "bool_value", "double_value", "bytes_value"})


def attributes_of(pairs: Iterable[KeyValue]) -> dict[str, Any]:
    """OTLP KeyValues as a plain dict of Python values (the form SDK spans have). The scalar
    kinds are read inline: this loop is most of the endpoint's time per span."""
    found: dict[str, Any] = {}
    for kv in pairs:
        value = kv.value
        which = value.WhichOneof("value")
        found[kv.key] = getattr(value, which) if which in _SCALARS else value_of(value)
    return found


def value_of(value: AnyValue) -> Any:
    """An AnyValue as str, bool, int, float, bytes, tuple or dict; None when it holds none."""
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return tuple(value_of(v) for v in value.array_value.values)
    if which == "kvlist_value":
        return attributes_of(value.kvlist_value.values)
    return getattr(value, which)
