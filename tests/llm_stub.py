"""A local HTTP server that answers like the OpenAI and Anthropic APIs, for the real SDK clients.

Tests queue the replies they want (JSON bodies, server-sent events, error statuses); the server
answers each request with the next one and keeps what it was sent. It runs in a thread on a free
port of 127.0.0.1, so the SDKs go over real HTTP with no patched method.
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # a JSON value, or bytes sent as they are
    events: list[tuple[str | None, Any]] | None = None  # server-sent events: (event, data)
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before each event (to measure time to first token)


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive and chunked streams, as the real APIs
    disable_nagle_algorithm = True  # headers and body go in separate writes: no 40 ms stalls

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length)
        stub = self.server.stub
        request = Request("POST", self.path, dict(self.headers), body)
        if stub.answer is not None:  # a fixed answer per request, nothing kept (benchmarks)
            reply = stub.answer(request)
        else:
            stub.requests.append(request)
            reply = stub.next_reply()
        # the client may close a stream before it is all sent
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self._send(reply)

    def _send(self, reply: Reply) -> None:
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if reply.events is not None:
            self.send_header("content-type", "text/event-stream")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            self.wfile.flush()
            for event, data in reply.events:
                if reply.delay:
                    time.sleep(reply.delay)
                text = data if isinstance(data, str) else json.dumps(data)
                sse = ((f"event: {event}\n" if event else "") + f"data: {text}\n\n").encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(sse), sse))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            return
        payload = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
        ctype = "application/octet-stream" if isinstance(reply.body, bytes) else "application/json"
        self.send_header("content-type", reply.headers.get("content-type", ctype))
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    stub: StubServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that closes a kept-alive connection (a stream closed early) is no error."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class StubServer:
    """``with StubServer() as stub:``, then ``stub.reply(...)``; point a client at ``stub.url``."""

    def __init__(self, answer: Callable[[Request], Reply] | None = None, port: int = 0) -> None:
        self.answer = answer
        self.replies: deque[Reply] = deque()
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", port), _Handler)
        self._server.stub = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def reply(self, reply: Reply) -> StubServer:
        with self._lock:
            self.replies.append(reply)
        return self

    def next_reply(self) -> Reply:
        with self._lock:
            if self.replies:
                return self.replies.popleft()
        return Reply(500, {"error": {"message": "stub: no reply queued", "type": "stub"}})

    def start(self) -> StubServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> StubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ---- OpenAI formats -----------------------------------------------------------------------------


def openai_usage(
    prompt: int, completion: int, cached: int | None = None, reasoning: int | None = None
) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if cached is not None:
        usage["prompt_tokens_details"] = {"cached_tokens": cached, "audio_tokens": 0}
    if reasoning is not None:
        usage["completion_tokens_details"] = {"reasoning_tokens": reasoning, "audio_tokens": 0}
    return usage


def openai_chat(model: str, usage: dict[str, Any] | None, text: str = "Hello!") -> dict[str, Any]:
    return {
        "id": "chatcmpl-stub",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": usage,
        "system_fingerprint": "fp_stub",
    }


def openai_chat_chunks(
    model: str, pieces: list[str], usage: dict[str, Any] | None = None
) -> list[tuple[str | None, Any]]:
    """``data:`` chunks as OpenAI streams them; with ``usage``, the final usage-only chunk."""

    def chunk(delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
        return {
            "id": "chatcmpl-stub",
            "object": "chat.completion.chunk",
            "created": 1_700_000_000,
            "model": model,
            "system_fingerprint": "fp_stub",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }

    events: list[tuple[str | None, Any]] = [
        (None, chunk({"role": "assistant", "content": ""}, None))
    ]
    events += [(None, chunk({"content": piece}, None)) for piece in pieces]
    events.append((None, chunk({}, "stop")))
    if usage is not None:
        final = chunk({}, None)
        final["choices"] = []
        final["usage"] = usage
        events.append((None, final))
    events.append((None, "[DONE]"))
    return events


def openai_error(status: int, message: str, kind: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def openai_response(model: str, usage: dict[str, Any] | None, text: str = "Hi") -> dict[str, Any]:
    """A Responses API object."""
    return {
        "id": "resp_stub",
        "object": "response",
        "created_at": 1_700_000_000,
        "status": "completed",
        "model": model,
        "output": [
            {
                "type": "message",
                "id": "msg_stub",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": text, "annotations": []}],
            }
        ],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": usage,
    }


def responses_usage(inp: int, out: int, cached: int = 0, reasoning: int = 0) -> dict[str, Any]:
    return {
        "input_tokens": inp,
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": out,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": inp + out,
    }


def openai_response_events(model: str, usage: dict[str, Any]) -> list[tuple[str | None, Any]]:
    """The Responses API's event sequence for one text message; the usage comes with
    ``response.completed``."""
    created = openai_response(model, None, "")
    created["status"] = "in_progress"
    created["output"] = []
    done = openai_response(model, usage, "Hi")
    item = {**done["output"][0], "status": "in_progress", "content": []}
    text = {"type": "output_text", "text": "", "annotations": []}
    where = {"item_id": "msg_stub", "output_index": 0, "content_index": 0}
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": created},
        {"type": "response.output_item.added", "output_index": 0, "item": item},
        {"type": "response.content_part.added", **where, "part": text},
        {"type": "response.output_text.delta", **where, "delta": "Hi", "logprobs": []},
        {"type": "response.output_text.done", **where, "text": "Hi", "logprobs": []},
        {"type": "response.content_part.done", **where, "part": {**text, "text": "Hi"}},
        {"type": "response.output_item.done", "output_index": 0, "item": done["output"][0]},
        {"type": "response.completed", "response": done},
    ]
    return [(e["type"], {**e, "sequence_number": n}) for n, e in enumerate(events)]


# ---- Anthropic formats --------------------------------------------------------------------------


def anthropic_usage(
    inp: int, out: int, cache_read: int | None = None, cache_write: int | None = None
) -> dict[str, Any]:
    return {
        "input_tokens": inp,
        "output_tokens": out,
        "cache_read_input_tokens": cache_read,
        "cache_creation_input_tokens": cache_write,
    }


def anthropic_message(model: str, usage: dict[str, Any], text: str = "Hello!") -> dict[str, Any]:
    return {
        "id": "msg_stub",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": usage,
    }


def anthropic_events(
    model: str, usage: dict[str, Any], pieces: list[str]
) -> list[tuple[str | None, Any]]:
    """The documented event sequence: message_start carries the input side of the usage,
    message_delta the (cumulative) output tokens."""
    start = anthropic_message(model, {**usage, "output_tokens": 1}, "")
    start["content"] = []
    start["stop_reason"] = None
    events: list[tuple[str | None, Any]] = [
        ("message_start", {"type": "message_start", "message": start}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        ("ping", {"type": "ping"}),
    ]
    for piece in pieces:
        delta = {"type": "text_delta", "text": piece}
        events.append(
            ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta})
        )
    events += [
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": usage["output_tokens"]},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    return events


def anthropic_error(message: str, kind: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}}
