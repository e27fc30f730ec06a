"""tracking.instrument on real OpenAI SDK clients, over HTTP against the local stub server.

Costs are computed by hand in each test from the prices set up here (per 1M tokens unless said):
gpt-4o $2.50 input, $1.25 cached input, $10 output; text-embedding-3-small $0.02 input;
whisper-1 $0.006 per minute; tts-1 $15 per 1M characters; dall-e-3 $0.04 per image.
"""

from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal

import openai
import pytest

import tracking
from tests.conftest import add_test_prices, stored_calls
from tests.llm_stub import (
    Reply,
    openai_chat,
    openai_chat_chunks,
    openai_error,
    openai_response,
    openai_response_events,
    openai_usage,
    responses_usage,
)
from tracking.db import make_engine
from tracking.price_store import RateRow, add_version, set_patterns

MESSAGES = [{"role": "user", "content": "Hello"}]
SNAPSHOT = "gpt-4o-2024-08-06"
M = 1_000_000


def add_prices(url: str) -> None:
    add_test_prices(url)  # gpt-4o
    eng = make_engine(url)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    with eng.begin() as conn:
        set_patterns(conn, "openai", "gpt-4o", [("gpt-4o-20??-??-??", 1)])
        for model, rows in {
            "text-embedding-3-small": [RateRow("input_tokens", Decimal("0.02"), M)],
            "whisper-1": [RateRow("audio_seconds", Decimal("0.006"), 60)],
            "tts-1": [RateRow("characters", Decimal("15"), M)],
            "dall-e-3": [RateRow("images", Decimal("0.04"), 1)],
        }.items():
            add_version(conn, "openai", model, start, rows, source="test")
    eng.dispose()
    tracking.refresh_prices()


def client(stub, cls=openai.OpenAI):
    return cls(base_url=f"{stub.url}/v1", api_key="sk-test", max_retries=0)


def chat_reply(usage=None, request_id="req_chat") -> Reply:
    usage = usage if usage is not None else openai_usage(1200, 300, cached=1000, reasoning=100)
    return Reply(body=openai_chat(SNAPSHOT, usage), headers={"x-request-id": request_id})


# 200 uncached input tokens at $2.50/M + 1000 cached at $1.25/M + 300 output at $10/M
CHAT_COST = Decimal("0.0005") + Decimal("0.00125") + Decimal("0.003")


def logged(url: str) -> list:
    assert tracking.flush(10)
    return stored_calls(url)


def test_chat_is_logged_with_usage_cost_request_id_and_attribution(configured, stub) -> None:
    add_prices(configured)
    oai = tracking.instrument(client(stub))
    stub.reply(chat_reply())
    with tracking.attribute(user_id="u_42", feature="summarize", team="growth"):
        answer = oai.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert answer.choices[0].message.content == "Hello!"
    (row,) = logged(configured)
    assert (row.provider, row.model, row.requested_model) == ("openai", SNAPSHOT, "gpt-4o")
    assert (row.operation, row.status, row.error_type) == ("chat", "ok", None)
    assert (row.user_id, row.feature, row.tags) == ("u_42", "summarize", {"team": "growth"})
    assert row.request_id == "req_chat"
    # prompt_tokens already includes the cached tokens: they are a part of input, not added
    assert (row.input_tokens, row.cache_read_tokens, row.output_tokens) == (1200, 1000, 300)
    assert (row.reasoning_tokens, row.cache_write_tokens) == (100, None)
    assert row.cost_usd == CHAT_COST == Decimal("0.00475")
    assert row.duration_ms >= 0 and row.ttft_ms is None


def test_instrument_returns_the_client_and_twice_logs_once(configured, stub) -> None:
    oai = client(stub)
    assert tracking.instrument(oai) is oai
    assert tracking.instrument(oai) is oai
    stub.reply(chat_reply())
    oai.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    other = client(stub)  # never instrumented: not logged, SDK class untouched
    stub.reply(chat_reply())
    other.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert len(logged(configured)) == 1


def test_stream_with_usage_is_priced_with_time_to_first_token(configured, stub) -> None:
    add_prices(configured)
    oai = tracking.instrument(client(stub))
    usage = openai_usage(1200, 300, cached=1000, reasoning=100)
    events = openai_chat_chunks(SNAPSHOT, ["Hel", "lo"], usage)
    stub.reply(Reply(events=events, headers={"x-request-id": "req_s"}, delay=0.02))
    with tracking.attribute(user_id="u_1"):
        stream = oai.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    assert isinstance(stream, openai.Stream)  # the host still sees the SDK's stream
    assert stream.response.status_code == 200
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "Hello"
    (row,) = logged(configured)
    assert (row.model, row.operation, row.request_id, row.user_id) == (
        SNAPSHOT,
        "chat",
        "req_s",
        "u_1",  # attribution of the moment the stream began
    )
    assert (row.input_tokens, row.cache_read_tokens, row.output_tokens) == (1200, 1000, 300)
    assert row.cost_usd == CHAT_COST
    assert 0 < row.ttft_ms < row.duration_ms


def test_stream_without_usage_leaves_tokens_null_and_unpriced(configured, stub) -> None:
    add_prices(configured)
    oai = tracking.instrument(client(stub))
    stub.reply(Reply(events=openai_chat_chunks(SNAPSHOT, ["Hi"])))
    for _ in oai.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True):
        pass
    (row,) = logged(configured)
    assert row.model == SNAPSHOT and row.status == "ok"
    assert [row.input_tokens, row.output_tokens, row.cache_read_tokens] == [None, None, None]
    assert (row.cost_usd, row.cost_source, row.price_version_id) == (None, None, None)
    assert row.tags == {"usage_reported": False}


def test_stream_closed_early_is_logged_once(configured, stub) -> None:
    oai = tracking.instrument(client(stub))
    usage = openai_usage(10, 2)
    stub.reply(Reply(events=openai_chat_chunks(SNAPSHOT, ["a", "b", "c"], usage)))
    stub.reply(Reply(events=openai_chat_chunks(SNAPSHOT, ["a", "b", "c"], usage)))
    kwargs = {"model": "gpt-4o", "messages": MESSAGES, "stream": True}
    stream = oai.chat.completions.create(**kwargs)
    for _ in stream:
        break
    stream.close()
    stream.close()  # closing twice still logs once
    with oai.chat.completions.create(**kwargs) as second:
        next(second)
    found = logged(configured)
    assert len(found) == 2
    for row in found:
        assert row.tags == {"stream_end": "closed", "usage_reported": False}
        assert (row.model, row.input_tokens, row.cost_usd) == (SNAPSHOT, None, None)


def test_stream_abandoned_half_read_is_logged_when_collected(configured, stub) -> None:
    oai = tracking.instrument(client(stub))
    stub.reply(Reply(events=openai_chat_chunks(SNAPSHOT, ["a", "b"], openai_usage(10, 2))))
    with tracking.attribute(user_id="u_gone"):
        stream = oai.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
        next(stream)
    del stream
    gc.collect()
    (row,) = logged(configured)
    assert (row.user_id, row.model, row.status) == ("u_gone", SNAPSHOT, "ok")
    assert row.tags == {"stream_end": "collected", "usage_reported": False}
    assert row.ttft_ms is not None


@pytest.mark.parametrize(
    ("status", "error", "kind"),
    [
        (429, openai.RateLimitError, "RateLimitError"),
        (400, openai.BadRequestError, "BadRequestError"),
    ],
)
def test_provider_error_is_logged_and_reraised_unchanged(configured, stub, status, error, kind):
    oai = tracking.instrument(client(stub))
    body = openai_error(status, "nope", "invalid_request_error")
    stub.reply(Reply(status, body, headers={"x-request-id": "req_err"}))
    with tracking.attribute(feature="chat"), pytest.raises(error) as info:
        oai.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert type(info.value) is error and info.value.status_code == status
    assert info.value.request_id == "req_err"
    (row,) = logged(configured)
    assert (row.status, row.error_type, row.request_id, row.feature) == (
        "error",
        kind,
        "req_err",
        "chat",
    )
    assert (row.model, row.requested_model, row.operation) == ("gpt-4o", "gpt-4o", "chat")


def test_timeout_is_logged_as_an_api_timeout_error(configured, stub) -> None:
    oai = tracking.instrument(
        openai.OpenAI(base_url=f"{stub.url}/v1", api_key="sk-test", max_retries=0, timeout=0.2)
    )
    stub.reply(Reply(events=openai_chat_chunks(SNAPSHOT, ["a"]), delay=1.0))
    with pytest.raises(openai.APITimeoutError):
        for _ in oai.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True):
            pass
    (row,) = logged(configured)
    assert (row.status, row.error_type) == ("error", "APITimeoutError")


def test_async_client_chat_and_stream(configured, stub) -> None:
    add_prices(configured)
    oai = tracking.instrument(client(stub, openai.AsyncOpenAI))
    usage = openai_usage(1200, 300, cached=1000, reasoning=100)
    stub.reply(chat_reply())
    stub.reply(Reply(events=openai_chat_chunks(SNAPSHOT, ["a", "b"], usage)))
    stub.reply(Reply(events=openai_chat_chunks(SNAPSHOT, ["a", "b"], usage)))

    async def main() -> None:
        with tracking.attribute(user_id="u_async"):
            await oai.chat.completions.create(model="gpt-4o", messages=MESSAGES)
            stream = await oai.chat.completions.create(
                model="gpt-4o",
                messages=MESSAGES,
                stream=True,
                stream_options={"include_usage": True},
            )
            assert isinstance(stream, openai.AsyncStream)
            async for _ in stream:
                pass
            async with await oai.chat.completions.create(
                model="gpt-4o", messages=MESSAGES, stream=True
            ) as early:
                await early.__anext__()

    asyncio.run(main())
    first, second, third = logged(configured)
    assert [r.user_id for r in (first, second, third)] == ["u_async"] * 3
    assert first.cost_usd == second.cost_usd == CHAT_COST
    assert second.ttft_ms is not None and first.ttft_ms is None
    assert third.tags == {"stream_end": "closed", "usage_reported": False}
    assert third.cost_usd is None


def test_responses_api_sync_and_streaming(configured, stub) -> None:
    add_prices(configured)
    oai = tracking.instrument(client(stub))
    usage = responses_usage(1200, 300, cached=1000, reasoning=100)
    stub.reply(Reply(body=openai_response(SNAPSHOT, usage), headers={"x-request-id": "req_r"}))
    stub.reply(Reply(events=openai_response_events(SNAPSHOT, usage)))
    assert oai.responses.create(model="gpt-4o", input="Hello").output_text == "Hi"
    kinds = [e.type for e in oai.responses.create(model="gpt-4o", input="Hello", stream=True)]
    assert kinds[-1] == "response.completed"
    plain, streamed = logged(configured)
    for row in (plain, streamed):
        assert (row.operation, row.model, row.requested_model) == ("responses", SNAPSHOT, "gpt-4o")
        assert (row.input_tokens, row.cache_read_tokens) == (1200, 1000)
        assert (row.output_tokens, row.reasoning_tokens) == (300, 100)
        assert row.cost_usd == CHAT_COST
    assert plain.request_id == "req_r" and streamed.ttft_ms is not None


def test_embeddings_audio_and_images_are_billed_in_their_units(configured, stub) -> None:
    add_prices(configured)
    oai = tracking.instrument(client(stub))
    stub.reply(
        Reply(
            body={
                "object": "list",
                "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}],
                "model": "text-embedding-3-small",
                "usage": {"prompt_tokens": 5000, "total_tokens": 5000},
            }
        )
    )
    stub.reply(Reply(body={"text": "hi", "language": "en", "duration": 330.0, "task": "x"}))
    stub.reply(Reply(body={"text": "hi", "usage": {"type": "duration", "seconds": 90}}))
    stub.reply(Reply(body=b"ID3-fake-mp3", headers={"x-request-id": "req_tts"}))
    stub.reply(Reply(body={"created": 1, "data": [{"url": "https://x/1"}, {"url": "https://x/2"}]}))
    oai.embeddings.create(model="text-embedding-3-small", input="hello")
    audio = ("talk.mp3", b"fake-audio", "audio/mpeg")
    oai.audio.transcriptions.create(model="whisper-1", file=audio, response_format="verbose_json")
    oai.audio.transcriptions.create(model="whisper-1", file=audio)
    speech = oai.audio.speech.create(model="tts-1", voice="alloy", input="x" * 2000)
    assert speech.content == b"ID3-fake-mp3"
    oai.images.generate(model="dall-e-3", prompt="a cat", n=2)
    found = {(r.operation, r.units and tuple(r.units.values())): r for r in logged(configured)}
    # 5000 tokens at $0.02/M
    assert found[("embedding", None)].cost_usd == Decimal("0.0001")
    assert found[("embedding", None)].input_tokens == 5000
    # 330 s and 90 s at $0.006 per minute
    assert found[("transcription", (330,))].cost_usd == Decimal("0.033")
    assert found[("transcription", (90,))].cost_usd == Decimal("0.009")
    # 2000 characters at $15/M
    tts = found[("speech", (2000,))]
    assert (tts.cost_usd, tts.request_id, tts.model) == (Decimal("0.03"), "req_tts", "tts-1")
    # 2 images at $0.04
    assert found[("image", (2,))].cost_usd == Decimal("0.08")


def test_transcription_as_plain_text_is_unpriced(configured, stub) -> None:
    add_prices(configured)
    oai = tracking.instrument(client(stub))
    stub.reply(Reply(body=b"hello there", headers={"content-type": "text/plain"}))
    audio = ("talk.mp3", b"fake-audio", "audio/mpeg")
    text = oai.audio.transcriptions.create(model="whisper-1", file=audio, response_format="text")
    assert "hello" in str(text)
    (row,) = logged(configured)
    assert (row.cost_usd, row.units, row.tags) == (None, None, {"usage_reported": False})


def test_unsupported_object_is_refused_by_name(configured, monkeypatch, caplog) -> None:
    with pytest.raises(ValueError, match="not a supported client"):
        tracking.instrument(object())
    monkeypatch.setenv("UNITWISE_STRICT", "0")
    tracking.configure(url=configured)
    thing = object()
    assert tracking.instrument(thing) is thing
    assert "not a supported client" in caplog.text
    assert tracking.stats()["rejected"] == 1


def test_tracking_off_leaves_calls_untouched(store_url, stub, monkeypatch) -> None:
    monkeypatch.setenv("UNITWISE_TRACKING", "off")
    tracking.configure(url=store_url)
    try:
        oai = tracking.instrument(client(stub))
        stub.reply(chat_reply())
        assert oai.chat.completions.create(model="gpt-4o", messages=MESSAGES).id
        assert tracking.flush(1) and stored_calls(store_url) == []
    finally:
        monkeypatch.delenv("UNITWISE_TRACKING")
        tracking.shutdown()


def test_import_tracking_does_not_import_the_sdks() -> None:
    probe = "import sys, tracking; print(sorted({'openai', 'anthropic'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_helpers_copies_and_azure_are_logged(configured, stub) -> None:
    add_prices(configured)
    oai = tracking.instrument(client(stub))
    usage = openai_usage(1200, 300, cached=1000, reasoning=100)
    stub.reply(Reply(events=openai_chat_chunks(SNAPSHOT, ["a"], usage)))
    with oai.chat.completions.stream(model="gpt-4o", messages=MESSAGES) as stream:
        assert stream.get_final_completion().choices[0].message.content == "a"
    stub.reply(chat_reply())
    oai.chat.completions.parse(model="gpt-4o", messages=MESSAGES)
    stub.reply(chat_reply(request_id="req_copy"))
    oai.with_options(timeout=5).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    azure = tracking.instrument(
        openai.AzureOpenAI(
            azure_endpoint=stub.url,
            api_key="az-test",
            api_version="2024-10-21",
            max_retries=0,
        )
    )
    stub.reply(chat_reply(request_id="req_azure"))
    azure.chat.completions.create(model="my-gpt-4o-deployment", messages=MESSAGES)
    assert stub.requests[-1].path.startswith("/openai/deployments/my-gpt-4o-deployment/")
    found = logged(configured)
    assert [r.request_id for r in found[2:]] == ["req_copy", "req_azure"]
    assert [r.cost_usd for r in found] == [CHAT_COST] * 4
    assert found[3].requested_model == "my-gpt-4o-deployment" and found[3].model == SNAPSHOT


def test_error_without_an_answer_is_unpriced_and_a_refusal_costs_nothing(configured, stub):
    add_prices(configured)
    oai = tracking.instrument(client(stub))
    stub.reply(Reply(429, openai_error(429, "slow down", "rate_limit")))
    with pytest.raises(openai.RateLimitError):
        oai.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    slow = oai.with_options(timeout=0.2)
    stub.reply(Reply(events=openai_chat_chunks(SNAPSHOT, ["a"]), delay=1.0))
    with pytest.raises(openai.APITimeoutError):
        slow.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    refused, timed_out = logged(configured)
    assert (refused.error_type, refused.cost_usd) == ("RateLimitError", Decimal(0))
    assert (timed_out.error_type, timed_out.cost_usd) == ("APITimeoutError", None)
    assert timed_out.tags == {"usage_reported": False}


def test_a_bad_answer_never_breaks_the_host_outside_strict_mode(configured, stub, monkeypatch):
    monkeypatch.setenv("UNITWISE_STRICT", "0")
    tracking.configure(url=configured, flush_interval=0.05)
    oai = tracking.instrument(client(stub))
    # parts larger than the whole: tracking refuses the usage, the host still gets its answer
    stub.reply(chat_reply(usage=openai_usage(10, 5, cached=50)))
    answer = oai.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert answer.usage.prompt_tokens == 10
    assert logged(configured) == []
    assert tracking.stats()["rejected"] == 1


def test_streamed_images_report_token_usage(configured, stub) -> None:
    oai = tracking.instrument(client(stub))
    usage = {
        "input_tokens": 50,
        "output_tokens": 4160,
        "total_tokens": 4210,
        "input_tokens_details": {"image_tokens": 0, "text_tokens": 50},
    }
    done = {
        "type": "image_generation.completed",
        "b64_json": "aGk=",
        "created_at": 1,
        "size": "1024x1024",
        "quality": "low",
        "background": "opaque",
        "output_format": "png",
        "usage": usage,
    }
    stub.reply(Reply(events=[("image_generation.completed", done)]))
    events = list(oai.images.generate(model="gpt-image-1", prompt="a cat", stream=True))
    assert events[-1].type == "image_generation.completed"
    (row,) = logged(configured)
    assert (row.operation, row.input_tokens, row.output_tokens, row.tags) == (
        "image",
        50,
        4160,
        None,
    )


def test_attribution_per_request_through_an_http_middleware(configured, stub) -> None:
    """The README's FastAPI middleware, on Starlette (what FastAPI's ``@app.middleware("http")``
    is): each request's calls carry that request's user."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.base import BaseHTTPMiddleware
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    oai = tracking.instrument(client(stub, openai.AsyncOpenAI))

    async def summarize(request):
        answer = await oai.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        return PlainTextResponse(answer.choices[0].message.content)

    async def attribute_ai_calls(request, call_next):
        user = request.headers.get("x-user-id")
        with tracking.attribute(user_id=user, feature=request.url.path):
            return await call_next(request)

    app = Starlette(
        routes=[Route("/summarize", summarize, methods=["POST"])],
        middleware=[Middleware(BaseHTTPMiddleware, dispatch=attribute_ai_calls)],
    )
    with TestClient(app) as http:
        for user in ("u_1", "u_2"):
            stub.reply(chat_reply())
            assert http.post("/summarize", headers={"x-user-id": user}).text == "Hello!"
    found = logged(configured)
    assert [(r.user_id, r.feature) for r in found] == [("u_1", "/summarize"), ("u_2", "/summarize")]


def test_a_stream_still_open_at_exit_is_logged(stub, tmp_path) -> None:
    stub.reply(Reply(events=openai_chat_chunks(SNAPSHOT, ["a", "b"], openai_usage(10, 2))))
    script = f"""
import openai, tracking
tracking.configure()
oai = tracking.instrument(openai.OpenAI(base_url="{stub.url}/v1", api_key="k", max_retries=0))
stream = oai.chat.completions.create(model="gpt-4o", messages=[], stream=True)
next(stream)  # the process ends with the stream open
"""
    url = f"sqlite:///{tmp_path / 'exit.db'}"
    env = {**os.environ, "UNITWISE_DATABASE_URL": url, "UNITWISE_DATA_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr
    (row,) = stored_calls(url)
    assert (row.model, row.tags) == (SNAPSHOT, {"stream_end": "exit", "usage_reported": False})


def test_stream_helpers_of_responses_and_async_chat(configured, stub) -> None:
    add_prices(configured)
    oai = tracking.instrument(client(stub))
    usage = responses_usage(1200, 300, cached=1000, reasoning=100)
    stub.reply(Reply(events=openai_response_events(SNAPSHOT, usage)))
    with oai.responses.stream(model="gpt-4o", input="Hello") as stream:
        assert stream.get_final_response().output_text == "Hi"
    chat_usage = openai_usage(1200, 300, cached=1000, reasoning=100)
    stub.reply(Reply(events=openai_chat_chunks(SNAPSHOT, ["a", "b"], chat_usage)))

    async def main() -> None:
        aoai = tracking.instrument(client(stub, openai.AsyncOpenAI))
        async with aoai.chat.completions.stream(model="gpt-4o", messages=MESSAGES) as astream:
            final = await astream.get_final_completion()
        assert final.choices[0].message.content == "ab"

    asyncio.run(main())
    responses_row, chat_row = logged(configured)
    assert (responses_row.operation, chat_row.operation) == ("responses", "chat")
    assert responses_row.cost_usd == chat_row.cost_usd == CHAT_COST


def test_token_billed_transcription_and_a_failed_response_stream(configured, stub) -> None:
    oai = tracking.instrument(client(stub))
    usage = {"type": "tokens", "input_tokens": 120, "output_tokens": 30, "total_tokens": 150}
    stub.reply(Reply(body={"text": "hi", "usage": usage}))
    audio = ("talk.mp3", b"fake-audio", "audio/mpeg")
    oai.audio.transcriptions.create(model="gpt-4o-transcribe", file=audio)
    events = openai_response_events(SNAPSHOT, responses_usage(10, 0))
    failed = events[-1][1]
    failed["type"] = "response.failed"
    failed["response"] = {**failed["response"], "status": "failed"}
    failed["response"]["error"] = {"code": "server_error", "message": "boom"}
    stub.reply(Reply(events=[*events[:-1], ("response.failed", failed)]))
    for _ in oai.responses.create(model="gpt-4o", input="Hello", stream=True):
        pass
    transcription, response = logged(configured)
    assert (transcription.input_tokens, transcription.output_tokens) == (120, 30)
    assert transcription.units is None
    assert (response.status, response.error_type, response.input_tokens) == (
        "error",
        "server_error",
        10,
    )


def test_raw_response_calls_are_read_from_their_json_body(configured, stub) -> None:
    add_prices(configured)
    oai = tracking.instrument(client(stub))
    stub.reply(chat_reply(request_id="req_raw"))
    raw = oai.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES)
    assert raw.parse().choices[0].message.content == "Hello!"  # the host's object, untouched
    stub.reply(chat_reply())
    with oai.chat.completions.with_streaming_response.create(
        model="gpt-4o", messages=MESSAGES
    ) as streaming:
        streaming.parse()
    read, unread = logged(configured)
    assert (read.request_id, read.input_tokens, read.cost_usd) == ("req_raw", 1200, CHAT_COST)
    # a body not yet read when create returns: logged, its usage unreported
    assert (unread.cost_usd, unread.tags) == (None, {"usage_reported": False})
