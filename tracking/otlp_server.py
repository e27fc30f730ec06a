"""The OTLP/HTTP endpoint: ``POST /v1/traces`` as the OpenTelemetry Collector and every
language's OTLP exporter send it, served by Starlette under uvicorn.

The answers follow the OTLP/HTTP specification: the response is encoded like the request
(protobuf or JSON); 200 carries an ExportTraceServiceResponse (``partial_success`` when spans
were refused); an error carries a ``google.rpc.Status`` whose message says why. 400 (a body that
cannot be read) and 413 (over the size limit) must not be retried and change nothing; 503 (the
writer's queue is full) is retried by the exporters. With a token set, a request without
``Authorization: Bearer <token>`` gets 401 before its body is read.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from google.protobuf import json_format
from google.protobuf.message import Message
from google.rpc.status_pb2 import Status
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tracking.otlp_decode import JSON, BadBody, TooLarge, gunzip, media_type, parse_request
from tracking.otlp_receiver import Busy, Receiver

log = logging.getLogger("unitwise.otlp")

TRACES_PATH = "/v1/traces"
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024  # as sent and once decompressed
SHUTDOWN_TIMEOUT = 30.0  # seconds to write what is queued when the server stops

# google.rpc.Code values of the error answers
_CODES = {400: 3, 401: 16, 413: 8, 415: 3, 503: 14}


def encoded(message: Message, kind: str) -> bytes:
    """A message in the request's encoding (JSON: OTLP's lowerCamelCase names)."""
    if kind == JSON:
        return json_format.MessageToJson(message, indent=None).encode()
    return message.SerializeToString()


def error(status: int, reason: str, kind: str, headers: dict[str, str] | None = None) -> Response:
    """An error answer: a google.rpc.Status with the reason, encoded like the request."""
    log.warning("OTLP request refused with %d: %s", status, reason)
    body = encoded(Status(code=_CODES[status], message=reason), kind)
    return Response(body, status_code=status, media_type=kind, headers=headers)


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refused (``TooLarge``) as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"the body is {int(declared):,} bytes, over the limit of {limit:,}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"the body is over the limit of {limit:,} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def build_app(
    receiver: Receiver,
    token: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    shutdown_timeout: float = SHUTDOWN_TIMEOUT,
) -> Starlette:
    """The ASGI app; at its shutdown the receiver writes what it has queued."""
    expected = f"Bearer {token}".encode() if token else None

    async def traces(request: Request) -> Response:
        unreadable: BadBody | None = None
        try:
            kind = media_type(request.headers.get("content-type"))
        except BadBody as exc:
            kind, unreadable = JSON, exc
        if expected is not None:  # before anything else is said about the request
            given = request.headers.get("authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                return error(401, "send Authorization: Bearer <token>", kind, _CHALLENGE)
        if unreadable is not None:
            return error(415, str(unreadable), kind)
        coding = request.headers.get("content-encoding", "identity").strip().lower()
        if coding not in ("gzip", "identity", ""):
            return error(415, f"Content-Encoding {coding!r}: send gzip or none", kind)
        try:
            body = await read_body(request, max_body_bytes)
            if coding == "gzip":
                body = gunzip(body, max_body_bytes)
            outcome = receiver.receive(parse_request(body, kind))
        except TooLarge as exc:
            return error(413, str(exc), kind)
        except BadBody as exc:
            return error(400, str(exc), kind)
        except Busy as exc:
            return error(503, str(exc), kind, {"Retry-After": "1"})
        return Response(encoded(outcome.response(), kind), media_type=kind)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        if not receiver.close(shutdown_timeout):
            log.error("unitwise: calls still queued at shutdown went to the journal")

    return Starlette(routes=[Route(TRACES_PATH, traces, methods=["POST"])], lifespan=lifespan)


_CHALLENGE = {"WWW-Authenticate": "Bearer"}
