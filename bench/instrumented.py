"""Instrument overhead: one SDK call through an instrumented client against the same call through
a plain client, both over HTTP to the local stub server of the tests (tests/llm_stub.py), run
in a process of its own as a real API would be (in the same process its threads would compete
with the host's for the GIL).

Calls alternate between the two clients, in pairs whose order alternates too, so that drift in
the machine's load falls on both alike; each call is timed whole (request, answer, and for a stream
every chunk read), with the writer running against a fresh PostgreSQL database and the prices
loaded. The overhead is the median, over the pairs, of the instrumented call's time less the
plain call's of the same pair; a first line pits two plain clients against each other, which
shows the noise floor of the machine at the time. A last line times the instrumentation
alone, in process: the wrapper around a function that returns an SDK answer already made, beside
that function called bare (the host thread's CPU time per call, without the network's noise).

    python -m bench.instrumented [--calls 2000]
"""

from __future__ import annotations

import argparse
import multiprocessing
import socket
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import anthropic
import openai

import tracking
from bench.common import finish_tracking, fresh_pg, start_tracking
from tests.llm_stub import (
    Reply,
    Request,
    StubServer,
    anthropic_events,
    anthropic_message,
    anthropic_usage,
    openai_chat,
    openai_chat_chunks,
    openai_usage,
)

MESSAGES = [{"role": "user", "content": "Hello"}]
CHAT = openai_chat("gpt-4o-2024-08-06", openai_usage(1200, 300, cached=1000))
CHUNKS = openai_chat_chunks("gpt-4o-2024-08-06", ["a"] * 10, openai_usage(1200, 300, cached=1000))
USAGE = anthropic_usage(1000, 500, cache_read=10_000, cache_write=2000)
MESSAGE = anthropic_message("claude-3-5-sonnet-20241022", USAGE)
EVENTS = anthropic_events("claude-3-5-sonnet-20241022", USAGE, ["a"] * 10)


def answer(request: Request) -> Reply:
    """The same answer to every request of a kind: chat or message, plain or streamed."""
    streamed = request.json().get("stream") is True
    if request.path.endswith("/chat/completions"):
        return Reply(events=CHUNKS) if streamed else Reply(body=CHAT)
    return Reply(events=EVENTS) if streamed else Reply(body=MESSAGE)


def serve(port: int, ready: Any) -> None:
    """The stub in a process of its own (``multiprocessing``), answering until terminated."""
    with StubServer(answer, port=port):
        ready.set()
        threading.Event().wait()


@contextmanager
def stub_process() -> Iterator[str]:
    with socket.socket() as probe:  # a free port for the child to listen on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    spawn = multiprocessing.get_context("spawn")
    ready = spawn.Event()
    child = spawn.Process(target=serve, args=(port, ready), daemon=True)
    child.start()
    try:
        if not ready.wait(60):
            raise RuntimeError("the stub server did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        child.terminate()
        child.join(10)


def interleaved(
    plain: Callable[[], object],
    tracked: Callable[[], object],
    n: int,
) -> tuple[list[int], list[int]]:
    clock = time.perf_counter_ns
    base: list[int] = []
    ours: list[int] = []
    for i in range(n):
        # the pair's order alternates: the second call of a pair tends to be a little faster
        pair = ((plain, base), (tracked, ours)) if i % 2 == 0 else ((tracked, ours), (plain, base))
        for call, samples in pair:
            started = clock()
            call()
            samples.append(clock() - started)
    return base, ours


def in_process(n: int) -> tuple[list[int], list[int]]:
    """The wrapper's own time: no HTTP, the SDK's answer object made once up front."""
    from openai.types.chat import ChatCompletion

    from tracking.integrations._wrap import sync_wrapper
    from tracking.integrations.openai import CHAT as CHAT_SPEC

    answer = ChatCompletion.model_validate(CHAT)

    def bare(**kwargs: object) -> ChatCompletion:
        return answer

    wrapped = sync_wrapper(bare, CHAT_SPEC)
    clock = time.perf_counter_ns
    base: list[int] = []
    ours: list[int] = []
    for i in range(2 * n):
        call, samples = (bare, base) if i % 2 == 0 else (wrapped, ours)
        started = clock()
        call(model="gpt-4o", messages=MESSAGES)
        samples.append(clock() - started)
    return base, ours


def report(name: str, base: list[int], ours: list[int]) -> None:
    """Medians of each, and the overhead as the median of each instrumented call's time less
    the plain call of its pair (robust to the machine's drift)."""
    b = statistics.median(base) / 1000
    o = statistics.median(ours) / 1000
    paired = statistics.median(x - y for x, y in zip(ours, base, strict=True)) / 1000
    print(f"{name:<40} plain {b:8.1f} µs   instrumented {o:8.1f} µs   overhead {paired:+6.1f} µs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    n = args.calls
    with fresh_pg() as url, tempfile.TemporaryDirectory() as tmp, stub_process() as stub_url:
        start_tracking(url, tmp)

        def openai_client() -> openai.OpenAI:
            return openai.OpenAI(base_url=f"{stub_url}/v1", api_key="sk-bench", max_retries=0)

        def anthropic_client() -> anthropic.Anthropic:
            return anthropic.Anthropic(base_url=stub_url, api_key="sk-bench", max_retries=0)

        plain_oai, our_oai = openai_client(), tracking.instrument(openai_client())
        plain_ant, our_ant = anthropic_client(), tracking.instrument(anthropic_client())

        def chat(client: openai.OpenAI) -> Callable[[], object]:
            return lambda: client.chat.completions.create(model="gpt-4o", messages=MESSAGES)

        def chat_stream(client: openai.OpenAI) -> Callable[[], object]:
            options = {"include_usage": True}
            return lambda: list(
                client.chat.completions.create(
                    model="gpt-4o", messages=MESSAGES, stream=True, stream_options=options
                )
            )

        def message(client: anthropic.Anthropic) -> Callable[[], object]:
            return lambda: client.messages.create(
                model="claude-3-5-sonnet-latest", max_tokens=100, messages=MESSAGES
            )

        def message_stream(client: anthropic.Anthropic) -> Callable[[], object]:
            return lambda: list(
                client.messages.create(
                    model="claude-3-5-sonnet-latest", max_tokens=100, messages=MESSAGES, stream=True
                )
            )

        cases = [
            ("control: plain vs plain openai chat", chat),
            ("openai chat.completions.create", chat),
            ("openai chat stream (12 chunks)", chat_stream),
            ("anthropic messages.create", message),
            ("anthropic messages stream (16 events)", message_stream),
        ]
        with tracking.attribute(user_id="u_42", feature="summarize", team="growth"):
            for name, make in cases:
                plain, ours = (plain_oai, our_oai) if "openai" in name else (plain_ant, our_ant)
                if name.startswith("control"):
                    ours = openai_client()
                interleaved(make(plain), make(ours), 100)  # warm-up
                report(name, *interleaved(make(plain), make(ours), n))
            in_process(1000)  # warm-up
            report("in process: wrapper alone (chat answer)", *in_process(10 * n))
        finish_tracking()


if __name__ == "__main__":
    main()
