"""OpenAI (and Azure OpenAI) clients: chat, responses, embeddings, audio and images, streams too.

Token conversion (DESIGN.md): OpenAI's ``prompt_tokens`` / ``input_tokens`` already include the
cached tokens, so they map to ``input_tokens`` as they are and ``cached_tokens`` to
``cache_read_tokens`` (a part of it); ``completion_tokens`` / ``output_tokens`` include the
reasoning tokens, which map to ``reasoning_tokens``. Nothing is added up, so nothing is counted
twice.

Billable units other than tokens:
- transcriptions: ``audio_seconds`` from ``usage.seconds`` (duration-billed models) or the
  verbose ``duration``; token-billed models (``usage.type == "tokens"``) give tokens. A plain-text
  answer says neither: the call is logged unpriced with ``usage_reported: false``.
- speech: ``characters`` = the length of ``input``.
- images: ``images`` = the number of images returned (``n`` when the answer has none), or the
  tokens when the answer reports token usage (GPT Image models).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import openai

from tracking.integrations._call import Call, field, tokens
from tracking.integrations._policy import Policy
from tracking.integrations._wrap import Spec, wrap

PROVIDER = "openai"


def _request_id(call: Call, result: Any) -> None:
    request_id = getattr(result, "_request_id", None)
    if request_id is None:  # binary answers (speech) keep the raw response instead
        headers = field(result, "response", "headers")
        request_id = headers.get("x-request-id") if headers is not None else None
    if isinstance(request_id, str):
        call.request_id = request_id


def _answered(call: Call, result: Any) -> None:
    model = field(result, "model")
    if isinstance(model, str):
        call.model = model


def chat_usage(usage: Any) -> dict[str, Any]:
    return {
        "input_tokens": tokens(field(usage, "prompt_tokens")),
        "cache_read_tokens": tokens(field(usage, "prompt_tokens_details", "cached_tokens")),
        "cache_write_tokens": tokens(field(usage, "prompt_tokens_details", "cache_write_tokens")),
        "output_tokens": tokens(field(usage, "completion_tokens")),
        "reasoning_tokens": tokens(field(usage, "completion_tokens_details", "reasoning_tokens")),
    }


def responses_usage(usage: Any) -> dict[str, Any]:
    return {
        "input_tokens": tokens(field(usage, "input_tokens")),
        "cache_read_tokens": tokens(field(usage, "input_tokens_details", "cached_tokens")),
        "cache_write_tokens": tokens(field(usage, "input_tokens_details", "cache_write_tokens")),
        "output_tokens": tokens(field(usage, "output_tokens")),
        "reasoning_tokens": tokens(field(usage, "output_tokens_details", "reasoning_tokens")),
    }


def _set_usage(call: Call, usage: Any, convert: Any) -> None:
    if usage is None:
        call.unreported = True
        return
    call.usage = convert(usage)
    call.unreported = False


def read_chat(call: Call, result: Any, kwargs: Mapping[str, Any]) -> None:
    _answered(call, result)
    _request_id(call, result)
    _set_usage(call, field(result, "usage"), chat_usage)


def observe_chat(call: Call, chunk: Any) -> None:
    """Each chunk names the model; the last one carries the usage if the caller asked for it
    (``stream_options={"include_usage": True}``), otherwise the tokens stay unreported."""
    if call.model is None:
        _answered(call, chunk)
    usage = field(chunk, "usage")
    if usage is not None:
        _set_usage(call, usage, chat_usage)


def read_responses(call: Call, result: Any, kwargs: Mapping[str, Any]) -> None:
    _answered(call, result)
    _request_id(call, result)
    _set_usage(call, field(result, "usage"), responses_usage)


def observe_responses(call: Call, event: Any) -> None:
    """``response.created`` names the model; ``response.completed`` (or ``.incomplete``,
    ``.failed``) carries the final response with its usage."""
    response = field(event, "response")
    if response is None:
        return
    _answered(call, response)
    usage = field(response, "usage")
    if usage is not None:
        _set_usage(call, usage, responses_usage)
    if field(event, "type") == "response.failed":
        call.status = "error"
        call.error_type = str(field(response, "error", "code") or "response.failed")


def read_embedding(call: Call, result: Any, kwargs: Mapping[str, Any]) -> None:
    _answered(call, result)
    _request_id(call, result)
    usage = field(result, "usage")
    if usage is None:
        call.unreported = True
        return
    call.usage = {"input_tokens": tokens(field(usage, "prompt_tokens"))}


def read_transcription(call: Call, result: Any, kwargs: Mapping[str, Any]) -> None:
    _request_id(call, result)
    usage = field(result, "usage")
    kind = field(usage, "type")
    if kind == "duration":
        call.usage = {"audio_seconds": field(usage, "seconds")}
    elif kind == "tokens":
        call.usage = {
            "input_tokens": tokens(field(usage, "input_tokens")),
            "output_tokens": tokens(field(usage, "output_tokens")),
        }
    elif isinstance(field(result, "duration"), int | float):
        call.usage = {"audio_seconds": field(result, "duration")}
    else:  # text, srt or vtt answers carry no usage
        call.unreported = True


def observe_transcription(call: Call, event: Any) -> None:
    """A streamed transcription reports its usage in ``transcript.text.done``."""
    if field(event, "type") == "transcript.text.done" and field(event, "usage") is not None:
        read_transcription(call, event, {})
        call.unreported = not call.usage


def observe_usage(call: Call, event: Any) -> None:
    """Streamed speech (``stream_format="sse"``) and images (GPT Image models): the final event
    reports token usage."""
    usage = field(event, "usage")
    if usage is not None and tokens(field(usage, "input_tokens")) is not None:
        call.usage = {
            "input_tokens": tokens(field(usage, "input_tokens")),
            "output_tokens": tokens(field(usage, "output_tokens")),
        }
        call.unreported = False


def read_speech(call: Call, result: Any, kwargs: Mapping[str, Any]) -> None:
    _request_id(call, result)
    text = kwargs.get("input")
    if isinstance(text, str):
        call.usage = {"characters": len(text)}
    else:
        call.unreported = True


def read_image(call: Call, result: Any, kwargs: Mapping[str, Any]) -> None:
    _request_id(call, result)
    usage = field(result, "usage")
    if usage is not None and field(usage, "input_tokens") is not None:
        call.usage = {
            "input_tokens": tokens(field(usage, "input_tokens")),
            "output_tokens": tokens(field(usage, "output_tokens")),
        }
        return
    data = field(result, "data")
    count = len(data) if isinstance(data, list) else kwargs.get("n", 1)
    call.usage = {"images": count if isinstance(count, int) else 1}


_STREAMS = (openai.Stream, openai.AsyncStream)

# resource path, method, and how to log it
CHAT = Spec(PROVIDER, "chat", read_chat, observe_chat, _STREAMS)
RESPONSES = Spec(PROVIDER, "responses", read_responses, observe_responses, _STREAMS)

# ``parse`` posts on its own; the ``stream`` helpers call ``create``, so they are logged with it
METHODS: tuple[tuple[str, str, Spec], ...] = (
    ("chat.completions", "create", CHAT),
    ("chat.completions", "parse", CHAT),
    ("responses", "create", RESPONSES),
    ("responses", "parse", RESPONSES),
    ("embeddings", "create", Spec(PROVIDER, "embedding", read_embedding)),
    (
        "audio.transcriptions",
        "create",
        Spec(PROVIDER, "transcription", read_transcription, observe_transcription, _STREAMS),
    ),
    ("audio.speech", "create", Spec(PROVIDER, "speech", read_speech, observe_usage, _STREAMS)),
    ("images", "generate", Spec(PROVIDER, "image", read_image, observe_usage, _STREAMS)),
)


def supports(client: object) -> bool:
    return isinstance(client, openai.OpenAI | openai.AsyncOpenAI)


def instrument(client: Any, policy: Policy) -> None:
    """Wrap the logged methods of this client's resources (AzureOpenAI is an OpenAI client)."""
    is_async = isinstance(client, openai.AsyncOpenAI)
    for path, method, spec in METHODS:
        owner = client
        for name in path.split("."):
            owner = getattr(owner, name, None)
            if owner is None:
                break
        if owner is not None:
            wrap(owner, method, spec, is_async, policy)
