"""tracking.litellm_callback() with the real litellm package, over HTTP against the local stub.

Each test makes one request through LiteLLM and, as the reference, the same request with the same
stub reply through ``tracking.instrument`` on the provider's own SDK: both stored calls must have
the same tokens and the same cost (prices from the two SDK integration tests: gpt-4o and
claude-3-5-sonnet, cache rates included).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no fetch of LiteLLM's price map

import anthropic
import litellm
import openai
import pytest
from litellm.litellm_core_utils.logging_worker import GLOBAL_LOGGING_WORKER

import tracking
from tests.conftest import stored_calls
from tests.llm_stub import (
    Reply,
    anthropic_error,
    anthropic_events,
    anthropic_message,
    openai_chat,
    openai_chat_chunks,
    openai_error,
    openai_usage,
)
from tests.test_integrations_anthropic import COST as ANTHROPIC_COST
from tests.test_integrations_anthropic import SNAPSHOT as CLAUDE
from tests.test_integrations_anthropic import USAGE as ANTHROPIC_USAGE
from tests.test_integrations_anthropic import add_prices as add_anthropic_prices
from tests.test_integrations_openai import SNAPSHOT as GPT
from tests.test_integrations_openai import add_prices as add_openai_prices

litellm.telemetry = False
MESSAGES = [{"role": "user", "content": "Hello"}]
NO_RETRY = {"num_retries": 0, "max_retries": 0}  # one reply queued, one request made
# OpenAI's prompt tokens include the cached ones: 2000 in (1500 cached), 300 out (100 reasoning)
OPENAI_USAGE = openai_usage(2000, 300, cached=1500, reasoning=100)
# 500 x $2.50/M + 1500 x $1.25/M + 300 x $10/M
OPENAI_COST = Decimal("0.00125") + Decimal("0.001875") + Decimal("0.003")
COMPARED = (
    "provider",
    "status",
    "error_type",
    "input_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
    "cost_usd",
)


@pytest.fixture
def callback() -> Iterator[object]:
    """LiteLLM set up as the README says; its callback lists emptied afterwards."""
    logger = tracking.litellm_callback()
    litellm.callbacks = [logger]
    yield logger
    litellm.logging_callback_manager._reset_all_callbacks()


def via_openai(stub, **extra):
    return {
        "model": "openai/gpt-4o",
        "api_base": f"{stub.url}/v1",
        "api_key": "sk-test",
        **NO_RETRY,
        **extra,
    }


def via_anthropic(stub, **extra):
    return {
        "model": f"anthropic/{CLAUDE}",
        "api_base": stub.url,
        "api_key": "sk-ant",
        **NO_RETRY,
        **extra,
    }


def logged(url: str, count: int) -> list:
    """The stored calls, once LiteLLM's logging thread has handed ``count`` of them over."""
    deadline = time.monotonic() + 30
    while tracking.stats()["enqueued"] < count and time.monotonic() < deadline:
        time.sleep(0.01)
    assert tracking.flush(10)
    return stored_calls(url)


def twin_openai(stub, reply: Reply, **kwargs):
    """The same request through tracking.instrument on the OpenAI SDK (the reference)."""
    client = tracking.instrument(
        openai.OpenAI(base_url=f"{stub.url}/v1", api_key="sk-test", max_retries=0)
    )
    stub.reply(reply)
    result = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, **kwargs)
    if kwargs.get("stream"):
        list(result)


def twin_anthropic(stub, reply: Reply, **kwargs):
    client = tracking.instrument(
        anthropic.Anthropic(base_url=stub.url, api_key="sk-ant", max_retries=0)
    )
    stub.reply(reply)
    result = client.messages.create(model=CLAUDE, max_tokens=10, messages=MESSAGES, **kwargs)
    if kwargs.get("stream"):
        list(result)


def assert_same(row, twin) -> None:
    assert [getattr(row, name) for name in COMPARED] == [getattr(twin, name) for name in COMPARED]


def test_openai_call_with_cache_and_reasoning_and_attribution(configured, stub, callback) -> None:
    add_openai_prices(configured)
    stub.reply(Reply(body=openai_chat(GPT, OPENAI_USAGE), headers={"x-request-id": "req_l"}))
    metadata = {"feature": "summarize", "tags": ["beta"], "unitwise_tags": {"team": "growth"}}
    answer = litellm.completion(
        messages=MESSAGES, user="u_42", metadata=metadata, **via_openai(stub)
    )
    assert answer.choices[0].message.content == "Hello!"
    (row,) = logged(configured, 1)
    twin_openai(stub, Reply(body=openai_chat(GPT, OPENAI_USAGE)))
    _, twin = logged(configured, 2)
    assert_same(row, twin)
    assert (row.input_tokens, row.cache_read_tokens, row.output_tokens) == (2000, 1500, 300)
    assert (row.reasoning_tokens, row.cost_usd) == (100, OPENAI_COST)
    assert (row.model, row.requested_model, row.operation) == (GPT, "gpt-4o", "chat")
    assert (row.user_id, row.feature, row.status, row.request_id) == (
        "u_42",
        "summarize",
        "ok",
        "req_l",
    )
    # LiteLLM's own price for it, from its bundled map: $2.50 in, $1.25 cached, $10 out
    assert row.tags == {"team": "growth", "litellm_tags": ["beta"], "litellm_cost": "0.006125"}
    assert 0 <= row.duration_ms < 60_000


def test_anthropic_cached_prompt_counts_each_cached_token_once(configured, stub, callback) -> None:
    add_anthropic_prices(configured)
    stub.reply(
        Reply(body=anthropic_message(CLAUDE, ANTHROPIC_USAGE), headers={"request-id": "r_c"})
    )
    with tracking.attribute(user_id="u_7", feature="draft"):
        litellm.completion(messages=MESSAGES, max_tokens=10, **via_anthropic(stub))
    (row,) = logged(configured, 1)
    twin_anthropic(stub, Reply(body=anthropic_message(CLAUDE, ANTHROPIC_USAGE)))
    _, twin = logged(configured, 2)
    assert_same(row, twin)
    # 1000 uncached + 10,000 read + 2000 written, once each, each at its own rate
    assert (row.input_tokens, row.cache_read_tokens, row.cache_write_tokens) == (
        13_000,
        10_000,
        2000,
    )
    assert (row.output_tokens, row.cost_usd) == (500, ANTHROPIC_COST)
    assert (row.provider, row.model, row.operation) == ("anthropic", CLAUDE, "chat")
    assert (row.user_id, row.feature) == ("u_7", "draft")  # from the attribute block
    assert row.request_id == "r_c"


def test_streams_are_logged_once_with_their_final_usage(configured, stub, callback) -> None:
    add_openai_prices(configured)
    add_anthropic_prices(configured)
    stub.reply(Reply(events=openai_chat_chunks(GPT, ["Hel", "lo"], OPENAI_USAGE)))
    stream = litellm.completion(
        messages=MESSAGES, stream=True, stream_options={"include_usage": True}, **via_openai(stub)
    )
    text = [choice.delta.content or "" for chunk in stream for choice in chunk.choices]
    assert "".join(text) == "Hello"
    stub.reply(Reply(events=anthropic_events(CLAUDE, ANTHROPIC_USAGE, ["a", "b"])))
    for _ in litellm.completion(
        messages=MESSAGES, max_tokens=10, stream=True, **via_anthropic(stub)
    ):
        pass
    streamed = logged(configured, 2)
    assert len(streamed) == 2
    twin_openai(
        stub,
        Reply(events=openai_chat_chunks(GPT, ["Hel", "lo"], OPENAI_USAGE)),
        stream=True,
        stream_options={"include_usage": True},
    )
    twin_anthropic(
        stub, Reply(events=anthropic_events(CLAUDE, ANTHROPIC_USAGE, ["a"])), stream=True
    )
    gpt, claude, gpt_twin, claude_twin = logged(configured, 4)
    assert (gpt.provider, claude.provider) == ("openai", "anthropic")
    assert_same(gpt, gpt_twin)
    assert_same(claude, claude_twin)
    assert (gpt.cost_usd, claude.cost_usd) == (OPENAI_COST, ANTHROPIC_COST)
    assert gpt.ttft_ms is not None


def test_failures_are_logged_with_their_error_and_cost_nothing(configured, stub, callback) -> None:
    add_openai_prices(configured)
    add_anthropic_prices(configured)
    stub.reply(Reply(429, openai_error(429, "slow down", "rate_limit")))
    with pytest.raises(litellm.RateLimitError):
        litellm.completion(messages=MESSAGES, user="u_1", **via_openai(stub))
    stub.reply(Reply(400, anthropic_error("bad request", "invalid_request_error")))
    with pytest.raises(litellm.BadRequestError):
        litellm.completion(messages=MESSAGES, max_tokens=10, **via_anthropic(stub))
    failed = logged(configured, 2)
    with pytest.raises(openai.RateLimitError):
        twin_openai(stub, Reply(429, openai_error(429, "slow down", "rate_limit")))
    with pytest.raises(anthropic.BadRequestError):
        twin_anthropic(stub, Reply(400, anthropic_error("bad request", "invalid_request_error")))
    twins = logged(configured, 4)[2:]
    for row, twin in zip(failed, twins, strict=True):
        assert_same(row, twin)
        assert (row.status, row.cost_usd) == ("error", Decimal(0))
    assert [row.error_type for row in failed] == ["RateLimitError", "BadRequestError"]
    assert (failed[0].user_id, failed[0].requested_model) == ("u_1", "gpt-4o")


def test_async_calls_streams_and_failures(configured, stub, callback) -> None:
    add_openai_prices(configured)
    add_anthropic_prices(configured)
    stub.reply(Reply(body=openai_chat(GPT, OPENAI_USAGE)))
    stub.reply(Reply(events=anthropic_events(CLAUDE, ANTHROPIC_USAGE, ["a", "b"])))
    stub.reply(Reply(400, openai_error(400, "bad", "invalid_request_error")))

    async def main() -> None:
        await litellm.acompletion(
            messages=MESSAGES, metadata={"user_id": "u_a"}, **via_openai(stub)
        )
        with tracking.attribute(feature="async_block"):
            stream = await litellm.acompletion(
                messages=MESSAGES, max_tokens=10, stream=True, **via_anthropic(stub)
            )
        assert [chunk async for chunk in stream]
        with pytest.raises(litellm.BadRequestError):
            await litellm.acompletion(messages=MESSAGES, **via_openai(stub))
        await GLOBAL_LOGGING_WORKER.flush()  # LiteLLM runs async callbacks in its own task

    asyncio.run(main())
    chat, claude, refused = logged(configured, 3)
    assert (chat.user_id, chat.cost_usd, chat.cache_read_tokens) == ("u_a", OPENAI_COST, 1500)
    assert (claude.input_tokens, claude.cache_write_tokens, claude.feature) == (
        13_000,
        2000,
        "async_block",
    )
    assert (claude.cost_usd, claude.ttft_ms is not None) == (ANTHROPIC_COST, True)
    assert (refused.status, refused.error_type, refused.cost_usd) == (
        "error",
        "BadRequestError",
        Decimal(0),
    )


def test_a_stream_read_after_its_attribute_block_keeps_the_attribution(
    configured, stub, callback
) -> None:
    add_openai_prices(configured)
    stub.reply(Reply(events=openai_chat_chunks(GPT, ["a", "b"], OPENAI_USAGE)))
    with tracking.attribute(user_id="u_block", feature="chat", team="growth"):
        stream = litellm.completion(
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
            metadata={"unitwise_tags": {"plan": "pro"}},
            **via_openai(stub),
        )
    for _ in stream:  # read outside the block, logged from LiteLLM's own thread
        pass
    (row,) = logged(configured, 1)
    assert (row.user_id, row.feature, row.cost_usd) == ("u_block", "chat", OPENAI_COST)
    assert row.tags == {"team": "growth", "plan": "pro", "litellm_cost": "0.006125"}


def test_a_timeout_is_an_error_left_unpriced(configured, stub, callback) -> None:
    add_openai_prices(configured)
    stub.reply(Reply(events=openai_chat_chunks(GPT, ["a"]), delay=1.0))
    with pytest.raises(litellm.Timeout):
        litellm.completion(messages=MESSAGES, timeout=0.2, **via_openai(stub))
    (row,) = logged(configured, 1)
    assert (row.status, row.error_type, row.cost_usd) == ("error", "Timeout", None)
    assert row.tags["usage_reported"] is False


def test_litellm_cost_tag_is_a_plain_decimal() -> None:
    from tracking.integrations.litellm import litellm_cost

    assert litellm_cost(0.000030000000000000004) == "0.00003"
    assert litellm_cost(0.006125) == "0.006125"
    assert litellm_cost(1e-9) == "0.000000001"
    assert litellm_cost(0) == "0"


def test_an_unpriced_model_is_flagged_never_zero(configured, stub, callback) -> None:
    stub.reply(Reply(body=openai_chat("gpt-unknown-1", OPENAI_USAGE)))
    litellm.completion(messages=MESSAGES, **via_openai(stub))
    (row,) = logged(configured, 1)
    assert (row.model, row.cost_usd, row.input_tokens) == ("gpt-unknown-1", None, 2000)


def test_bad_usage_never_breaks_the_host_outside_strict_mode(configured, stub, monkeypatch) -> None:
    monkeypatch.setenv("UNITWISE_STRICT", "0")
    tracking.configure(url=configured, flush_interval=0.05)
    litellm.callbacks = [tracking.litellm_callback()]
    try:
        # more cached tokens than prompt tokens: tracking refuses the call, the host is served
        stub.reply(Reply(body=openai_chat(GPT, openai_usage(10, 5, cached=50))))
        answer = litellm.completion(messages=MESSAGES, **via_openai(stub))
        assert answer.usage.prompt_tokens == 10
        deadline = time.monotonic() + 30
        while tracking.stats()["rejected"] < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert tracking.stats()["rejected"] == 1
        assert logged(configured, 0) == []
    finally:
        litellm.logging_callback_manager._reset_all_callbacks()


def test_import_tracking_does_not_import_litellm() -> None:
    probe = "import sys, tracking; print('litellm' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
