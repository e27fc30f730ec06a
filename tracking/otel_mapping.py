"""OpenTelemetry GenAI spans to Unitwise calls: one pure mapping for the span processor and the
OTLP endpoint alike (no opentelemetry import, so both share it and it is cheap to import).

What is read, by attribute (the current GenAI semantic conventions first, then the older names,
then the emitters' own):

- provider: ``gen_ai.provider.name``, else ``gen_ai.system`` (lower-cased, a few renamed to the
  price table's ids); model: ``gen_ai.response.model``, else ``gen_ai.request.model``;
  operation: ``gen_ai.operation.name``, else OpenLLMetry's ``llm.request.type``.
- tokens: ``gen_ai.usage.input_tokens`` / ``prompt_tokens``, ``output_tokens`` /
  ``completion_tokens``, ``cache_read.input_tokens`` / ``cache_read_input_tokens``,
  ``cache_creation.input_tokens`` / ``cache_creation_input_tokens``,
  ``reasoning.output_tokens`` / ``reasoning_tokens`` (and ``llm.usage.*`` beside them).
- the response id (``gen_ai.response.id``), ``error.type``, and user (``user.id``,
  ``enduser.id``) and feature (a chosen attribute, ``service.name`` by default) from the span's
  attributes, then its resource's.

Cache tokens (DESIGN.md, "Data model"): the store's ``input_tokens`` is all input, cache read
and write included. The conventions say the same of ``gen_ai.usage.input_tokens``, and OpenAI's
emitters follow them; an emitter that passes Anthropic's ``input_tokens`` through reports input
*beside* the cache. Which reading applies is told by the numbers themselves: cache parts larger
than the input, or a total (``gen_ai.usage.total_tokens``, ``llm.usage.total_tokens``) that
counts them beside it. (No emitter checked needs more; ``SpanData.scope_name`` is kept to tell
one apart should one ever need a rule of its own.)
So a cached token is counted once, whichever library emitted it. Checked against the packages'
code: the official ``opentelemetry-instrumentation-openai-v2`` (2.4b0) and OpenLLMetry's
``opentelemetry-instrumentation-openai`` and ``-anthropic`` (0.62.4) all report input with the
cache inside it.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tracking.events import uuid_of_int

# call ids of spans: a version-5 UUID of the trace and span ids, the same on every export
SPAN_NAMESPACE = uuid.UUID("0b9f4c52-7d2e-4f0a-9c31-5e8a1d6b2f47")

DEFAULT_FEATURE_ATTRIBUTE = "service.name"

# (store field, attribute names in the order they are tried)
TOKEN_ATTRIBUTES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("input_tokens", ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens")),
    ("output_tokens", ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens")),
    (
        "cache_read_tokens",
        (
            "gen_ai.usage.cache_read.input_tokens",
            "gen_ai.usage.cache_read_input_tokens",
            "llm.usage.cache_read_input_tokens",
        ),
    ),
    (
        "cache_write_tokens",
        (
            "gen_ai.usage.cache_creation.input_tokens",
            "gen_ai.usage.cache_creation_input_tokens",
            "llm.usage.cache_creation_input_tokens",
        ),
    ),
    (
        "reasoning_tokens",
        (
            "gen_ai.usage.reasoning.output_tokens",
            "gen_ai.usage.reasoning_tokens",
            "llm.usage.reasoning_tokens",
        ),
    ),
)

# GenAI provider names the conventions use, renamed to the price table's provider ids
PROVIDER_IDS = {
    "azure.ai.openai": "azure",
    "az.ai.openai": "azure",
    "azure.ai.inference": "azure",
    "aws.bedrock": "aws",
    "gcp.gemini": "google",
    "gcp.vertex_ai": "google",
    "gcp.gen_ai": "google",
    "x_ai": "x-ai",
    "mistral_ai": "mistral",
}


@dataclass(frozen=True, slots=True)
class SpanData:
    """What the mapping needs of one ended span, whether from the SDK or an OTLP body."""

    trace_id: int
    span_id: int
    name: str
    start_ns: int
    end_ns: int
    attributes: Mapping[str, Any]
    resource: Mapping[str, Any]
    scope_name: str | None  # the instrumentation scope: which emitter's reading applies
    error: bool
    status_message: str | None


def is_genai(span: SpanData) -> bool:
    """A span of an AI call: it names a GenAI operation or reports GenAI usage."""
    return genai_attributes(span.attributes)


def genai_attributes(attributes: Mapping[str, Any]) -> bool:
    """``is_genai`` on the attributes alone: every span a service ends passes here, so the
    prefixes are looked for in one string rather than key by key (a fifth of the time)."""
    if "gen_ai.operation.name" in attributes or "llm.request.type" in attributes:
        return True
    keys = "\n" + "\n".join(attributes)
    return "\ngen_ai.usage." in keys or "\nllm.usage." in keys


_NAMESPACE_BYTES = SPAN_NAMESPACE.bytes
_VERSION_5 = ~(0xF000 << 64) & ~(0xC000 << 48)


def call_id(trace_id: int, span_id: int) -> uuid.UUID:
    """The call's id: the same span, exported any number of times, is one call.

    A name-based UUID (version 5, RFC 9562: SHA-1 of ``SPAN_NAMESPACE`` and the name) whose name
    is the 24 bytes of the trace and span ids, as OTLP carries them; made by hand, as
    ``uuid.uuid5`` takes only text names before Python 3.12 and its steps cost a microsecond.
    """
    name = ((trace_id << 64) | span_id).to_bytes(24)
    value = int.from_bytes(
        hashlib.sha1(_NAMESPACE_BYTES + name, usedforsecurity=False).digest()[:16]
    )
    return uuid_of_int((value & _VERSION_5) | (5 << 76) | (0x8000 << 48))


def call_kwargs(span: SpanData, feature_attribute: str | None = None) -> dict[str, Any] | None:
    """Keyword arguments of ``tracking.record(**kwargs)`` for a GenAI span; None for any other.

    ``feature_attribute`` names the span or resource attribute read as the feature
    (``service.name`` when None). Values are passed on as found: ``record`` validates them, so a
    malformed span is refused with a message, like any bad call.
    """
    if not genai_attributes(span.attributes):
        return None
    return genai_kwargs(
        span.attributes,
        span.resource,
        span.trace_id,
        span.span_id,
        span.start_ns,
        span.end_ns,
        span.error,
        feature_attribute or DEFAULT_FEATURE_ATTRIBUTE,
    )


def genai_kwargs(
    attributes: Mapping[str, Any],
    resource: Mapping[str, Any],
    trace_id: int,
    span_id: int,
    start_ns: int,
    end_ns: int,
    error: bool,
    feature_attribute: str,
) -> dict[str, Any]:
    """``call_kwargs`` of a span known to be a GenAI one, from its parts: the span processor
    calls it with the SDK span's own, without making a SpanData first."""
    # straight-line on purpose: this runs on the host's thread for every GenAI span
    get = attributes.get
    requested = get("gen_ai.request.model")
    if type(requested) is not str or not requested:
        requested = None
    model = get("gen_ai.response.model")
    kwargs: dict[str, Any] = {
        "provider": provider_of(attributes),
        "model": model if type(model) is str and model else requested or "unknown",
        "call_id": call_id(trace_id, span_id),
        # whole microseconds first: as a float of seconds they then convert exactly
        "occurred_at": datetime.fromtimestamp(start_ns // 1000 / 1e6, UTC),
        "duration_ms": max(0, (end_ns - start_ns) // 1_000_000),
        "status": "error" if error else "ok",
    }
    if requested is not None:
        kwargs["requested_model"] = requested
    operation = get("gen_ai.operation.name") or get("llm.request.type")
    if type(operation) is str:
        kwargs["operation"] = operation
    response_id = get("gen_ai.response.id")
    if type(response_id) is str and response_id:
        kwargs["request_id"] = response_id
    error_type = get("error.type")
    if error_type is not None:
        error_type = error_type_of(error_type)
    if error_type is not None:
        kwargs["error_type"] = error_type
    elif error:
        kwargs["error_type"] = "error"
    add_usage(kwargs, get)
    # user.id / enduser.id and the feature attribute: the span's own, else its resource's
    user = get("user.id") or get("enduser.id") or resource.get("user.id")
    user = _label(user or resource.get("enduser.id"))
    if user is not None:
        kwargs["user_id"] = user
    feature = _label(get(feature_attribute) or resource.get(feature_attribute))
    if feature is not None and not feature.startswith("unknown_service"):
        kwargs["feature"] = feature  # the SDK's stand-in for an unnamed service is no feature
    return kwargs


def provider_of(attributes: Mapping[str, Any]) -> str:
    """``gen_ai.provider.name``, else the older ``gen_ai.system``, as a price table id."""
    name = _text(attributes.get("gen_ai.provider.name")) or _text(attributes.get("gen_ai.system"))
    if name is None:
        return "unknown"
    name = name.lower()
    return PROVIDER_IDS.get(name, name)


def usage_of(attributes: Mapping[str, Any]) -> dict[str, int]:
    """The token counts in the store's convention: input_tokens is all input, cache included."""
    usage: dict[str, Any] = {}
    add_usage(usage, attributes.get)
    return usage


def add_usage(into: dict[str, Any], get: Callable[[str], Any]) -> None:
    """``usage_of`` written into the call's fields (``get`` reads the span's attributes)."""
    for field, names in TOKEN_ATTRIBUTES:
        for name in names:
            value = get(name)
            if value is not None:
                found = value if type(value) is int else count(value)
                if found is not None:
                    into[field] = found
                    break
    reported = into.get("input_tokens")
    if reported is None:
        return
    cached = into.get("cache_read_tokens", 0) + into.get("cache_write_tokens", 0)
    if cached and _input_excludes_cache(get, into):
        into["input_tokens"] = reported + cached


def _input_excludes_cache(get: Callable[[str], Any], usage: Mapping[str, int]) -> bool:
    """Whether this span's input_tokens leaves the cache parts out, as its own numbers say:
    parts larger than the whole, or a total that adds them beside it."""
    reported = usage["input_tokens"]
    cached = usage.get("cache_read_tokens", 0) + usage.get("cache_write_tokens", 0)
    if cached > reported:
        return True
    total = count(get("gen_ai.usage.total_tokens"))
    if total is None:
        total = count(get("llm.usage.total_tokens"))
    output = usage.get("output_tokens", 0)
    return total is not None and total == reported + cached + output


def error_type_of(value: object) -> str | None:
    """``error.type``; an exception class set as the value (openai-v2 2.4b0 does) reaches the
    exporter as ``"<class 'openai.RateLimitError'>"``: its class name is the type."""
    text = _text(value)
    if text is not None and text.startswith("<class '") and text.endswith("'>"):
        return text[8:-2].rpartition(".")[2] or None
    return text


def count(value: object) -> int | None:
    """A token count as an attribute holds it: an int, or digits (OTLP JSON sends int64 as
    strings); anything else is no count."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _label(value: object) -> str | None:
    """A user or feature as an attribute holds it: a string, or an id given as a number."""
    if isinstance(value, str):
        return value or None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None
