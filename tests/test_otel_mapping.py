"""The span-to-call mapping on hand-made spans, one per convention an emitter follows."""

from __future__ import annotations

import copy
import hashlib
import pickle
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from tracking.events import uuid_of_int
from tracking.otel_mapping import SPAN_NAMESPACE, SpanData, call_id, call_kwargs, count, is_genai

START_NS = 1_767_225_600_123_456_789  # 2026-01-01 00:00:00.123456789 UTC


def span(
    attributes: dict[str, Any],
    resource: dict[str, Any] | None = None,
    scope: str | None = None,
    error: bool = False,
    duration_ns: int = 1_234_567_890,
) -> SpanData:
    return SpanData(
        trace_id=0x0AF7651916CD43DD8448EB211C80319C,
        span_id=0xB7AD6B7169203331,
        name="chat gpt-4o",
        start_ns=START_NS,
        end_ns=START_NS + duration_ns,
        attributes=attributes,
        resource=resource or {},
        scope_name=scope,
        error=error,
        status_message="boom" if error else None,
    )


def test_current_conventions_map_to_the_stores_fields() -> None:
    kwargs = call_kwargs(
        span(
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.response.model": "gpt-4o-2024-08-06",
                "gen_ai.response.id": "chatcmpl-123",
                "gen_ai.usage.input_tokens": 1200,
                "gen_ai.usage.cache_read.input_tokens": 1000,
                "gen_ai.usage.output_tokens": 300,
                "gen_ai.usage.reasoning.output_tokens": 100,
            },
            resource={"service.name": "summarizer"},
        )
    )
    assert kwargs == {
        "provider": "openai",
        "model": "gpt-4o-2024-08-06",
        "requested_model": "gpt-4o",
        "operation": "chat",
        "request_id": "chatcmpl-123",
        "call_id": call_id(0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331),
        "occurred_at": datetime(2026, 1, 1, 0, 0, 0, 123456, tzinfo=UTC),
        "duration_ms": 1234,
        "status": "ok",
        # OpenAI's reading, the conventions' own: the cached tokens are inside input_tokens
        "input_tokens": 1200,
        "cache_read_tokens": 1000,
        "output_tokens": 300,
        "reasoning_tokens": 100,
        "feature": "summarizer",
    }


def test_older_names_gen_ai_system_and_prompt_completion_tokens() -> None:
    kwargs = call_kwargs(
        span(
            {
                "gen_ai.system": "OpenAI",
                "gen_ai.request.model": "gpt-4o-mini",
                "llm.request.type": "chat",
                "gen_ai.usage.prompt_tokens": 20,
                "gen_ai.usage.completion_tokens": 5,
            }
        )
    )
    assert kwargs is not None
    assert (kwargs["provider"], kwargs["model"], kwargs["operation"]) == (
        "openai",
        "gpt-4o-mini",
        "chat",
    )
    assert (kwargs["input_tokens"], kwargs["output_tokens"]) == (20, 5)


def test_provider_name_wins_over_the_older_system_and_is_renamed_to_the_price_tables() -> None:
    both = {"gen_ai.provider.name": "azure.ai.openai", "gen_ai.system": "openai"}
    kwargs = call_kwargs(span({**both, "gen_ai.operation.name": "chat"}))
    assert kwargs is not None and kwargs["provider"] == "azure"


def test_openllmetry_cache_names_inclusive_input_counts_each_cached_token_once() -> None:
    # OpenLLMetry's anthropic instrumentation: input already includes the cache, total says so
    kwargs = call_kwargs(
        span(
            {
                "gen_ai.provider.name": "anthropic",
                "gen_ai.operation.name": "chat",
                "gen_ai.response.model": "claude-sonnet-4-5",
                "gen_ai.usage.input_tokens": 1530,
                "gen_ai.usage.cache_read_input_tokens": 1000,
                "gen_ai.usage.cache_creation_input_tokens": 500,
                "gen_ai.usage.output_tokens": 40,
                "llm.usage.total_tokens": 1570,
            },
            scope="opentelemetry.instrumentation.anthropic",
        )
    )
    assert kwargs is not None
    assert (kwargs["input_tokens"], kwargs["cache_read_tokens"], kwargs["cache_write_tokens"]) == (
        1530,
        1000,
        500,
    )


def test_anthropic_style_input_beside_the_cache_is_made_the_whole_input() -> None:
    # Anthropic's own reading passed through: 30 uncached tokens beside 1500 cached ones
    exclusive = {
        "gen_ai.provider.name": "anthropic",
        "gen_ai.operation.name": "chat",
        "gen_ai.usage.input_tokens": 30,
        "gen_ai.usage.cache_read.input_tokens": 1000,
        "gen_ai.usage.cache_creation.input_tokens": 500,
        "gen_ai.usage.output_tokens": 40,
    }
    kwargs = call_kwargs(span(exclusive))
    assert kwargs is not None and kwargs["input_tokens"] == 1530
    # told by the total even where the parts alone would not show it (2000 uncached beside 1000)
    with_total = {
        **exclusive,
        "gen_ai.usage.input_tokens": 2000,
        "gen_ai.usage.cache_creation.input_tokens": 0,
        "gen_ai.usage.total_tokens": 3040,
    }
    kwargs = call_kwargs(span(with_total))
    assert kwargs is not None and kwargs["input_tokens"] == 3000
    # and the same numbers with a total of input + output are the conventions' reading
    inclusive = {**with_total, "gen_ai.usage.total_tokens": 2040}
    kwargs = call_kwargs(span(inclusive))
    assert kwargs is not None and kwargs["input_tokens"] == 2000


def test_an_error_span_keeps_its_error_type() -> None:
    kwargs = call_kwargs(
        span(
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.system": "openai",
                "gen_ai.request.model": "gpt-4o",
                "error.type": "RateLimitError",
            },
            error=True,
        )
    )
    assert kwargs is not None
    assert (kwargs["status"], kwargs["error_type"]) == ("error", "RateLimitError")
    assert "input_tokens" not in kwargs  # not reported is not zero
    as_class = call_kwargs(
        span(
            {"gen_ai.operation.name": "chat", "error.type": "<class 'openai.APIError'>"}, error=True
        )
    )
    assert as_class is not None and as_class["error_type"] == "APIError"
    untyped = call_kwargs(span({"gen_ai.operation.name": "chat"}, error=True))
    assert untyped is not None and untyped["error_type"] == "error"


def test_user_and_feature_from_span_then_resource_attributes() -> None:
    attributes = {"gen_ai.operation.name": "chat", "enduser.id": "u_7", "app.feature": "search"}
    resource = {"service.name": "api", "user.id": "u_resource"}
    kwargs = call_kwargs(span(attributes, resource), feature_attribute="app.feature")
    assert kwargs is not None and (kwargs["user_id"], kwargs["feature"]) == ("u_7", "search")
    kwargs = call_kwargs(span({"gen_ai.operation.name": "chat"}, resource))
    assert kwargs is not None and (kwargs["user_id"], kwargs["feature"]) == ("u_resource", "api")


def test_the_sdks_unnamed_service_is_no_feature() -> None:
    kwargs = call_kwargs(
        span({"gen_ai.operation.name": "chat"}, {"service.name": "unknown_service:python"})
    )
    assert kwargs is not None and "feature" not in kwargs


def test_non_genai_spans_are_not_calls() -> None:
    http = span({"http.request.method": "GET", "url.full": "https://example.com"})
    assert not is_genai(http)
    assert call_kwargs(http) is None
    assert is_genai(span({"gen_ai.usage.output_tokens": 3}))
    assert is_genai(span({"llm.usage.total_tokens": 3}))


def test_the_call_id_is_the_same_for_every_export_of_a_span_and_differs_between_spans() -> None:
    first = call_kwargs(span({"gen_ai.operation.name": "chat"}))
    again = call_kwargs(span({"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 1}))
    assert first is not None and again is not None
    assert isinstance(first["call_id"], uuid.UUID) and first["call_id"] == again["call_id"]
    assert call_id(1, 2) != call_id(1, 3) != call_id(2, 2)
    # RFC 9562's version 5 of the ids' 24 bytes, so that any other reader of a span makes the same
    trace, span_id = 0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331
    name = bytes.fromhex("0af7651916cd43dd8448eb211c80319cb7ad6b7169203331")
    digest = hashlib.sha1(SPAN_NAMESPACE.bytes + name).digest()  # noqa: S324 - UUIDv5 is SHA-1 by spec
    made = call_id(trace, span_id)
    assert made == uuid.UUID(bytes=digest[:16], version=5)
    assert (made.version, made.variant) == (5, uuid.RFC_4122)


@pytest.mark.parametrize("value", [0, 1, 0x0AF7651916CD43DD8448EB211C80319C, (1 << 128) - 1])
def test_a_uuid_made_without_the_constructor_is_the_constructors_in_every_use(value: int) -> None:
    # call ids and uuid7 skip UUID()'s argument checks; what stores, sorts, hashes, copies,
    # pickles and prints the id must not tell the difference
    made, built = uuid_of_int(value), uuid.UUID(int=value)
    assert type(made) is uuid.UUID and made == built and hash(made) == hash(built)
    assert (str(made), made.bytes, made.hex, repr(made)) == (
        str(built),
        built.bytes,
        built.hex,
        repr(built),
    )
    assert made.is_safe is built.is_safe and made.version == built.version
    assert pickle.loads(pickle.dumps(made)) == built and copy.deepcopy(made) == built  # noqa: S301 - its own bytes
    assert not made < built and sorted([uuid.UUID(int=2), made])[0] == min(uuid.UUID(int=2), built)
    with pytest.raises(TypeError):  # as immutable as any UUID
        made.int = 5  # type: ignore[misc]


@pytest.mark.parametrize(
    ("value", "expected"),
    [(12, 12), ("12", 12), (12.0, 12), (True, None), ("12a", None), (1.5, None), (None, None)],
)
def test_counts_as_attributes_hold_them(value: object, expected: int | None) -> None:
    # OTLP JSON sends int64 values as strings
    assert count(value) == expected


def test_malformed_values_are_passed_on_for_record_to_refuse() -> None:
    kwargs = call_kwargs(span({"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": -5}))
    assert kwargs is not None and kwargs["input_tokens"] == -5
