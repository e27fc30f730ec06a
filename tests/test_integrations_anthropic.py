"""tracking.instrument on real Anthropic SDK clients, over HTTP against the local stub server.

Prices set up here for claude-3-5-sonnet (per 1M tokens): $3 input, $0.30 cache read, $3.75 cache
write, $15 output; the dated snapshot name resolves to that row through a pattern.
"""

from __future__ import annotations

import asyncio
import gc
from datetime import UTC, datetime
from decimal import Decimal

import anthropic
import pytest

import tracking
from tests.conftest import stored_calls
from tests.llm_stub import (
    Reply,
    anthropic_error,
    anthropic_events,
    anthropic_message,
    anthropic_usage,
)
from tracking.db import make_engine
from tracking.price_store import RateRow, add_version, set_patterns

SNAPSHOT = "claude-3-5-sonnet-20241022"
ALIAS = "claude-3-5-sonnet-latest"
MESSAGES = [{"role": "user", "content": "Hello"}]
M = 1_000_000
# Anthropic's input_tokens exclude the cache: 1000 uncached + 10,000 read + 2000 written
USAGE = anthropic_usage(1000, 500, cache_read=10_000, cache_write=2000)
# 1000 x $3/M + 10,000 x $0.30/M + 2000 x $3.75/M + 500 x $15/M: each cached token priced once
COST = Decimal("0.003") + Decimal("0.003") + Decimal("0.0075") + Decimal("0.0075")


def add_prices(url: str) -> None:
    eng = make_engine(url)
    with eng.begin() as conn:
        add_version(
            conn,
            "anthropic",
            "claude-3-5-sonnet",
            datetime(2024, 1, 1, tzinfo=UTC),
            [
                RateRow("input_tokens", Decimal("3"), M),
                RateRow("cache_read_tokens", Decimal("0.30"), M),
                RateRow("cache_write_tokens", Decimal("3.75"), M),
                RateRow("output_tokens", Decimal("15"), M),
            ],
            source="test",
        )
        set_patterns(conn, "anthropic", "claude-3-5-sonnet", [("claude-3-5-sonnet-2*", 1)])
    eng.dispose()
    tracking.refresh_prices()


def client(stub, cls=anthropic.Anthropic):
    return tracking.instrument(cls(base_url=stub.url, api_key="sk-ant-test", max_retries=0))


def logged(url: str) -> list:
    assert tracking.flush(10)
    return stored_calls(url)


def assert_cache_converted(row) -> None:
    assert (row.input_tokens, row.cache_read_tokens, row.cache_write_tokens) == (
        13_000,
        10_000,
        2000,
    )
    assert row.output_tokens == 500
    assert row.cost_usd == COST == Decimal("0.021")


def test_message_is_logged_with_cache_tokens_counted_once(configured, stub) -> None:
    add_prices(configured)
    claude = client(stub)
    stub.reply(Reply(body=anthropic_message(SNAPSHOT, USAGE), headers={"request-id": "req_a"}))
    with tracking.attribute(user_id="u_7", feature="draft", plan="pro"):
        message = claude.messages.create(model=ALIAS, max_tokens=100, messages=MESSAGES)
    assert message.content[0].text == "Hello!"
    (row,) = logged(configured)
    assert (row.provider, row.model, row.requested_model) == ("anthropic", SNAPSHOT, ALIAS)
    assert (row.operation, row.status, row.request_id) == ("messages", "ok", "req_a")
    assert (row.user_id, row.feature, row.tags) == ("u_7", "draft", {"plan": "pro"})
    assert_cache_converted(row)


def test_create_with_stream_true(configured, stub) -> None:
    add_prices(configured)
    claude = client(stub)
    events = anthropic_events(SNAPSHOT, USAGE, ["Hel", "lo"])
    stub.reply(Reply(events=events, headers={"request-id": "req_s"}, delay=0.02))
    stream = claude.messages.create(model=ALIAS, max_tokens=100, messages=MESSAGES, stream=True)
    assert isinstance(stream, anthropic.Stream)
    kinds = [event.type for event in stream]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    (row,) = logged(configured)
    assert_cache_converted(row)
    assert (row.model, row.request_id) == (SNAPSHOT, "req_s")
    assert 0 < row.ttft_ms < row.duration_ms


def test_stream_helper_sync_and_async(configured, stub) -> None:
    add_prices(configured)
    for _ in range(2):
        stub.reply(
            Reply(events=anthropic_events(SNAPSHOT, USAGE, ["a", "b"]), headers={"request-id": "r"})
        )
    claude = client(stub)
    with (
        tracking.attribute(user_id="u_sync"),
        claude.messages.stream(model=ALIAS, max_tokens=100, messages=MESSAGES) as stream,
    ):
        assert stream.get_final_text() == "ab"
        assert stream.request_id == "r"

    async def main() -> None:
        aclaude = client(stub, anthropic.AsyncAnthropic)
        with tracking.attribute(user_id="u_async"):
            manager = aclaude.messages.stream(model=ALIAS, max_tokens=100, messages=MESSAGES)
            async with manager as astream:
                texts = [text async for text in astream.text_stream]
        assert texts == ["a", "b"]

    asyncio.run(main())
    first, second = logged(configured)
    assert [first.user_id, second.user_id] == ["u_sync", "u_async"]
    for row in (first, second):
        assert_cache_converted(row)
        assert (row.operation, row.request_id, row.tags) == ("messages", "r", None)
        assert row.ttft_ms is not None


def test_async_create(configured, stub) -> None:
    add_prices(configured)
    stub.reply(Reply(body=anthropic_message(SNAPSHOT, USAGE)))
    stub.reply(Reply(events=anthropic_events(SNAPSHOT, USAGE, ["a"])))

    async def main() -> None:
        claude = client(stub, anthropic.AsyncAnthropic)
        await claude.messages.create(model=ALIAS, max_tokens=10, messages=MESSAGES)
        stream = await claude.messages.create(
            model=ALIAS, max_tokens=10, messages=MESSAGES, stream=True
        )
        assert isinstance(stream, anthropic.AsyncStream)
        async for _ in stream:
            pass

    asyncio.run(main())
    for row in logged(configured):
        assert_cache_converted(row)


def test_stream_closed_early_logs_what_was_seen(configured, stub) -> None:
    add_prices(configured)
    claude = client(stub)
    stub.reply(Reply(events=anthropic_events(SNAPSHOT, USAGE, ["a", "b", "c"])))
    with claude.messages.stream(model=ALIAS, max_tokens=100, messages=MESSAGES) as stream:
        for event in stream:
            if event.type == "content_block_start":
                break
    (row,) = logged(configured)
    # message_start was read: the input side is known; the output so far is what it said (1)
    assert (row.input_tokens, row.cache_read_tokens, row.output_tokens) == (13_000, 10_000, 1)
    assert row.tags == {"stream_end": "closed"}
    assert row.cost_usd == Decimal("0.003") + Decimal("0.003") + Decimal("0.0075") + Decimal(
        "0.000015"
    )


def test_stream_abandoned_half_read_is_logged_when_collected(configured, stub) -> None:
    claude = client(stub)
    stub.reply(Reply(events=anthropic_events(SNAPSHOT, USAGE, ["a", "b"])))
    stream = claude.messages.create(model=ALIAS, max_tokens=10, messages=MESSAGES, stream=True)
    next(stream)
    del stream
    gc.collect()
    (row,) = logged(configured)
    assert row.tags == {"stream_end": "collected"} and row.input_tokens == 13_000


@pytest.mark.parametrize(
    ("status", "error", "kind"),
    [
        (429, anthropic.RateLimitError, "rate_limit_error"),
        (400, anthropic.BadRequestError, "invalid_request_error"),
    ],
)
def test_provider_error_is_logged_and_reraised(configured, stub, status, error, kind) -> None:
    claude = client(stub)
    for _ in range(2):
        stub.reply(Reply(status, anthropic_error("nope", kind), headers={"request-id": "req_e"}))
    with pytest.raises(error) as info:
        claude.messages.create(model=ALIAS, max_tokens=10, messages=MESSAGES)
    assert type(info.value) is error and info.value.request_id == "req_e"
    with (
        pytest.raises(error),
        claude.messages.stream(model=ALIAS, max_tokens=10, messages=MESSAGES),
    ):
        pass
    found = logged(configured)
    assert [(r.status, r.error_type, r.request_id) for r in found] == [
        ("error", error.__name__, "req_e")
    ] * 2
    assert all(r.model == ALIAS and r.input_tokens is None for r in found)


def test_error_event_mid_stream_is_logged_with_usage_seen(configured, stub) -> None:
    claude = client(stub)
    events = anthropic_events(SNAPSHOT, USAGE, ["a"])[:4]
    events.append(("error", anthropic_error("Overloaded", "overloaded_error")))
    stub.reply(Reply(events=events))
    stream = claude.messages.create(model=ALIAS, max_tokens=10, messages=MESSAGES, stream=True)
    with pytest.raises(anthropic.APIStatusError) as info:
        for _ in stream:
            pass
    (row,) = logged(configured)
    assert (row.status, row.error_type) == ("error", type(info.value).__name__)
    assert row.input_tokens == 13_000


def test_instrument_twice_logs_once(configured, stub) -> None:
    claude = client(stub)
    assert tracking.instrument(claude) is claude
    stub.reply(Reply(body=anthropic_message(SNAPSHOT, USAGE)))
    stub.reply(Reply(events=anthropic_events(SNAPSHOT, USAGE, ["a"])))
    claude.messages.create(model=ALIAS, max_tokens=10, messages=MESSAGES)
    with claude.messages.stream(model=ALIAS, max_tokens=10, messages=MESSAGES) as stream:
        stream.until_done()
    assert len(logged(configured)) == 2


def test_parse_helper_is_logged(configured, stub) -> None:
    from pydantic import BaseModel

    class Answer(BaseModel):
        name: str

    add_prices(configured)
    claude = client(stub)
    stub.reply(Reply(body=anthropic_message(SNAPSHOT, USAGE, text='{"name": "Ada"}')))
    parsed = claude.messages.parse(
        model=ALIAS, max_tokens=10, messages=MESSAGES, output_format=Answer
    )
    assert parsed.parsed_output == Answer(name="Ada")
    (row,) = logged(configured)
    assert row.operation == "messages"
    assert_cache_converted(row)


def test_raw_response_of_the_async_client(configured, stub) -> None:
    add_prices(configured)
    stub.reply(Reply(body=anthropic_message(SNAPSHOT, USAGE), headers={"request-id": "req_raw"}))

    async def main() -> None:
        claude = client(stub, anthropic.AsyncAnthropic)
        raw = await claude.messages.with_raw_response.create(
            model=ALIAS, max_tokens=10, messages=MESSAGES
        )
        assert (await raw.parse()).content[0].text == "Hello!"

    asyncio.run(main())
    (row,) = logged(configured)
    assert row.request_id == "req_raw"
    assert_cache_converted(row)


@pytest.mark.parametrize(
    ("restated", "expected"),
    [
        # output only, as documented: the input side of message_start stays
        ({"output_tokens": 500}, (13_000, 10_000, 2000, 500)),
        # the input restated without the cache fields: the cache parts seen stay
        ({"input_tokens": 1000, "output_tokens": 500}, (13_000, 10_000, 2000, 500)),
        # everything restated: the latest figures win
        (
            {
                "input_tokens": 2000,
                "cache_read_input_tokens": 10_000,
                "cache_creation_input_tokens": 0,
                "output_tokens": 600,
            },
            (12_000, 10_000, 0, 600),
        ),
    ],
)
def test_message_delta_usage_is_cumulative(configured, stub, restated, expected) -> None:
    claude = client(stub)
    events = anthropic_events(SNAPSHOT, USAGE, ["a"])
    for name, data in events:
        if name == "message_delta":
            data["usage"] = restated
    stub.reply(Reply(events=events))
    for _ in claude.messages.create(model=ALIAS, max_tokens=10, messages=MESSAGES, stream=True):
        pass
    (row,) = logged(configured)
    found = (row.input_tokens, row.cache_read_tokens, row.cache_write_tokens, row.output_tokens)
    assert found == expected
