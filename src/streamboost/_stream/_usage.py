"""Token usage read from the one or two stream events that carry it: ``Usage`` and ``read``.

Providers report a response's tokens in the stream itself:

- OpenAI chat completions (``stream_options={"include_usage": true}``): the last chunk, with
  ``"choices": []`` and ``usage.prompt_tokens``/``completion_tokens``, cached prompt tokens in
  ``usage.prompt_tokens_details.cached_tokens`` and reasoning tokens in
  ``usage.completion_tokens_details.reasoning_tokens``; ``model`` on every chunk;
- the OpenAI Responses API: ``response.completed`` (or ``.incomplete``/``.failed``) with
  ``response.usage.input_tokens``/``output_tokens`` and their ``*_tokens_details``, and
  ``response.model``;
- Anthropic: ``message_start`` (``message.model``, ``message.usage.input_tokens`` and the
  cache counts) and ``message_delta`` (``usage.output_tokens``, cumulative, and in newer API
  versions the cumulative input counts too).

The kernel sends every event whose ``"usage"`` has a value to the scanner's general path
(``ScanBase.classify`` answers ``GENERAL`` for it), where ``EventScanner`` hands it here; no
other event is parsed. Every count is the latest one reported (all three APIs report totals,
not increments). Anything malformed is ignored: no count, never an exception.
"""

from __future__ import annotations

import re
from typing import Final

import orjson

_EVENT_SPLIT: Final = re.compile(rb"(?:\r\n|\r(?!\n)|\n)(?:\r\n|\r(?!\n)|\n)")
_LINE: Final = re.compile(rb"\r\n|\r|\n")
_RESPONSE_EVENTS: Final = frozenset(
    ("response.completed", "response.incomplete", "response.failed", "response.done")
)
MAX_MODEL: Final = 100  # characters of a model name kept for its label


class Usage:
    """The token counts one stream reported (None: not reported) and its model."""

    __slots__ = ("cached", "completion", "model", "prompt", "reasoning", "tenant")

    def __init__(self) -> None:
        self.model: str | None = None
        self.prompt: int | None = None
        self.completion: int | None = None
        self.cached: int | None = None  # prompt tokens read from a cache
        self.reasoning: int | None = None  # completion tokens spent reasoning
        self.tenant: str | None = None  # the tenant label, resolved once by the exporters

    def counts(self) -> tuple[tuple[str, int], ...]:
        """``(kind, tokens)`` for each kind the stream reported."""
        return tuple(
            (kind, value)
            for kind, value in (
                ("prompt", self.prompt),
                ("completion", self.completion),
                ("cached", self.cached),
                ("reasoning", self.reasoning),
            )
            if value is not None
        )

    def __repr__(self) -> str:
        return f"Usage(model={self.model!r}, {dict(self.counts())!r})"


def read(usage: Usage | None, segment: bytes, sse: bool) -> Usage | None:
    """The usage after the events of ``segment`` (whole SSE events, or NDJSON lines) that
    carry some; ``usage`` is the stream's so far (None before its first)."""
    for payload in _payloads(segment, sse):
        try:
            event = orjson.loads(payload)
        except (orjson.JSONDecodeError, RecursionError):
            continue
        if isinstance(event, dict):
            usage = _event(usage, event)
    return usage


def _payloads(segment: bytes, sse: bool) -> list[bytes]:
    if not sse:
        return [line for line in segment.split(b"\n") if b'"usage"' in line]
    payloads = []
    for block in _EVENT_SPLIT.split(segment):
        if b'"usage"' not in block:
            continue
        data = [
            line[6:] if line[5:6] == b" " else line[5:]
            for line in _LINE.split(block)
            if line.startswith(b"data:")
        ]
        if data:
            payloads.append(b"\n".join(data))
    return payloads


def _event(usage: Usage | None, event: dict[str, object]) -> Usage | None:
    kind = event.get("type")
    if kind == "message_start":  # Anthropic: the model, and the input counts
        message = _dict(event.get("message"))
        return _anthropic(usage, _dict(message.get("usage")), message.get("model"))
    if kind == "message_delta":  # Anthropic: the output count so far (cumulative)
        return _anthropic(usage, _dict(event.get("usage")), None)
    if kind in _RESPONSE_EVENTS:  # the Responses API
        response = _dict(event.get("response"))
        return _openai(usage, _dict(response.get("usage")), response.get("model"))
    return _openai(usage, _dict(event.get("usage")), event.get("model"))


def _openai(usage: Usage | None, counts: dict[str, object], model: object) -> Usage | None:
    """Chat completions (``prompt_tokens``...) or Responses (``input_tokens``...)."""
    if not counts:
        return usage
    prompt = _count(counts.get("prompt_tokens", counts.get("input_tokens")))
    completion = _count(counts.get("completion_tokens", counts.get("output_tokens")))
    details_in = _dict(counts.get("prompt_tokens_details", counts.get("input_tokens_details")))
    details_out = _dict(
        counts.get("completion_tokens_details", counts.get("output_tokens_details"))
    )
    cached = _count(details_in.get("cached_tokens"))
    reasoning = _count(details_out.get("reasoning_tokens"))
    if prompt is None and completion is None:
        return usage
    usage = _with_model(usage, model)
    usage.prompt = prompt if prompt is not None else usage.prompt
    usage.completion = completion if completion is not None else usage.completion
    usage.cached = cached if cached is not None else usage.cached
    usage.reasoning = reasoning if reasoning is not None else usage.reasoning
    return usage


def _anthropic(usage: Usage | None, counts: dict[str, object], model: object) -> Usage | None:
    """``input_tokens`` excludes the cache: the prompt is it plus the cache reads and writes."""
    if not counts:
        return usage
    given = _count(counts.get("input_tokens"))
    read_ = _count(counts.get("cache_read_input_tokens"))
    written = _count(counts.get("cache_creation_input_tokens"))
    output = _count(counts.get("output_tokens"))
    if given is None and output is None:
        return usage
    usage = _with_model(usage, model)
    if given is not None:
        usage.prompt = given + (read_ or 0) + (written or 0)
    if read_ is not None:
        usage.cached = read_
    if output is not None:
        usage.completion = output
    return usage


def _with_model(usage: Usage | None, model: object) -> Usage:
    if usage is None:
        usage = Usage()
    if isinstance(model, str) and model:
        usage.model = model[:MAX_MODEL]
    return usage


def _dict(value: object) -> dict[str, object]:
    return value if isinstance(value, dict) else {}


def _count(value: object) -> int | None:
    """A token count: a non-negative int (not a bool), else None."""
    if type(value) is int and value >= 0:
        return value
    return None
