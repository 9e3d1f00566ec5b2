"""Stream format presets: per protocol, what the first token is, what is metadata, what is
critical, and whether merging applies (``StreamBoost(stream_format=...)``).

Each preset is a frozen record read once at a response's start, never per chunk: its names
and flags become the scanner's (and the kernel's) fields. OpenAI chat completions, the
Responses API and Anthropic Messages take the kernel's fast path (names and one flag);
LangGraph and the Vercel AI SDK's line protocol need a look inside the JSON, so their test
(``_protocols``) sends every event down the scanner's general path.

``auto``, the default, recognises OpenAI chat completions, Responses API and Anthropic
Messages events together, by their names (which do not collide): their metadata and critical
names are added to the defaults, and any other named event still counts as content. A
response carrying the Vercel AI SDK's own header is read with the ``vercel-ai`` preset.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from ._protocols import langgraph_content, vercel_line_content, vercel_line_critical

# Event names that never count as tokens in any format (``StreamBoost(metadata_events=...)``'s
# default).
DEFAULT_METADATA_EVENTS: Final = ("metadata", "ping", "heartbeat", "keepalive")


def _names(*names: str) -> frozenset[bytes]:
    return frozenset(name.encode() for name in names)


@dataclass(frozen=True, slots=True)
class StreamPreset:
    """One stream format's rules (names encoded, as the scanner compares raw bytes)."""

    name: str
    content: frozenset[bytes] | None = None
    """The only events that carry tokens, by ``event:`` name or else first JSON ``"type"``
    (None: every event with data, but metadata, counts)."""
    metadata: frozenset[bytes] = frozenset()
    """``event:`` names that never count as tokens (added to ``metadata_events``)."""
    critical: frozenset[bytes] = frozenset()
    """Event names or JSON ``"type"`` values written at once (added to ``critical_events``)."""
    openai_chat: bool = False
    """The OpenAI chat completions rules: delta content or tool calls are content, a
    ``finish_reason`` or ``usage`` is critical."""
    merge: bool = False
    """``CoalesceConfig(merge_openai=True)`` applies."""
    sse_content: Callable[[bytes], bool] | None = None
    """The format's own test of an SSE event, after the rules above (general path)."""
    line_content: Callable[[bytes], bool] | None = None
    """The format's own test of an NDJSON line or text chunk (general path)."""
    line_critical: Callable[[bytes], bool] | None = None
    """The format's own test of critical lines (general path)."""
    plain_as_lines: bool = False
    """A ``text/plain`` body is read as lines, not chunks."""

    def with_names(self, metadata: frozenset[bytes], critical: frozenset[bytes]) -> StreamPreset:
        """This preset with the app's own metadata and critical names added."""
        return dataclasses.replace(
            self, metadata=self.metadata | metadata, critical=self.critical | critical
        )


# Anthropic Messages: every event but content_block_delta carries no token.
ANTHROPIC_CONTENT: Final = _names("content_block_delta")
ANTHROPIC_METADATA: Final = _names(
    "message_start", "ping", "content_block_start", "content_block_stop", "message_delta"
)
ANTHROPIC_CRITICAL: Final = _names("message_stop", "error")

# OpenAI Responses API: the deltas of text, refusals, reasoning and tool-call input are the
# tokens; the lifecycle events around them are not.
RESPONSES_CONTENT: Final = _names(
    "response.output_text.delta",
    "response.refusal.delta",
    "response.function_call_arguments.delta",
    "response.custom_tool_call_input.delta",
    "response.reasoning_text.delta",
    "response.reasoning_summary_text.delta",
    "response.audio.delta",
    "response.audio.transcript.delta",
)
RESPONSES_METADATA: Final = _names(
    *("response.created", "response.in_progress", "response.queued"),
    *("response.output_item.added", "response.output_item.done"),
    *("response.content_part.added", "response.content_part.done"),
    *("response.output_text.done", "response.output_text.annotation.added"),
    *("response.refusal.done", "response.function_call_arguments.done"),
    *("response.reasoning_summary_part.added", "response.reasoning_summary_part.done"),
    *("response.reasoning_summary_text.done", "response.reasoning_text.done"),
    *("response.audio.done", "response.audio.transcript.done"),
)
RESPONSES_CRITICAL: Final = _names(
    "response.completed", "response.failed", "response.incomplete", "error"
)

# The Vercel AI SDK's data stream protocol, SSE form (UI message stream): parts by "type".
VERCEL_CONTENT: Final = _names("text-delta", "reasoning-delta", "tool-input-delta")
VERCEL_CRITICAL: Final = _names("finish", "error", "abort")
# The headers the SDK requires on its streams (SSE form, and the older line form).
VERCEL_HEADERS: Final = (b"x-vercel-ai-ui-message-stream", b"x-vercel-ai-data-stream")

# LangGraph server: a run's error event.
LANGGRAPH_CRITICAL: Final = _names("error")

PRESETS: Final = {
    preset.name: preset
    for preset in (
        StreamPreset(
            "auto",
            # Critical names are metadata too: a terminal event is no token.
            metadata=ANTHROPIC_METADATA
            | ANTHROPIC_CRITICAL
            | RESPONSES_METADATA
            | RESPONSES_CRITICAL,
            critical=ANTHROPIC_CRITICAL | RESPONSES_CRITICAL,
            openai_chat=True,
            merge=True,
        ),
        StreamPreset("openai", openai_chat=True, merge=True),
        StreamPreset(
            "openai-responses",
            content=RESPONSES_CONTENT,
            metadata=RESPONSES_METADATA,
            critical=RESPONSES_CRITICAL,
        ),
        StreamPreset(
            "anthropic",
            content=ANTHROPIC_CONTENT,
            metadata=ANTHROPIC_METADATA,
            critical=ANTHROPIC_CRITICAL,
        ),
        StreamPreset("langgraph", critical=LANGGRAPH_CRITICAL, sse_content=langgraph_content),
        StreamPreset(
            "vercel-ai",
            content=VERCEL_CONTENT,
            critical=VERCEL_CRITICAL,
            line_content=vercel_line_content,
            line_critical=vercel_line_critical,
            plain_as_lines=True,
        ),
        StreamPreset("plain"),
    )
}
STREAM_FORMATS: Final = tuple(PRESETS)


def stream_preset(name: object) -> StreamPreset:
    """The preset called ``name``; a ``ValueError`` naming the value and the choices."""
    preset = PRESETS.get(name) if isinstance(name, str) else None
    if preset is None:
        choices = ", ".join(repr(choice) for choice in STREAM_FORMATS)
        raise ValueError(
            f"stream_format={name!r} is not a stream format: use one of {choices} (default 'auto')"
        )
    return preset
