"""``CoalesceConfig``: how StreamBoost batches the writes of a streaming response."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Final

from . import _checks
from ._config_health import DEFAULT_STALL_EVENT, DEFAULT_STALL_EVENT_NDJSON, check_health

DEFAULT_CRITICAL_EVENTS: Final = frozenset({"start", "complete", "done", "error"})
DEFAULT_CONTENT_TYPES: Final = frozenset(
    {"text/event-stream", "application/x-ndjson", "application/jsonl", "text/plain"}
)


@dataclass(frozen=True, slots=True)
class CoalesceConfig:
    """Batching rules for streamed bodies (and, when ``websocket=True``, WebSocket messages).

    The first complete event of a response, and every event up to and including the first
    content event, go out at once. Later events are joined into one write that is flushed when
    ``window`` seconds have passed since its first chunk, when it holds ``max_events`` events
    or ``max_bytes`` bytes, when a critical event arrives, or when the body ends.
    """

    window: float = 0.05
    """Seconds a batch may wait for more events before it is written."""
    max_events: int = 16
    """A batch holding this many whole events is written at once."""
    max_bytes: int = 65536
    """A batch holding this many bytes is written at once."""
    max_buffer_bytes: int = 1024 * 1024
    """Bytes buffered (including a write in flight) before the app's own send waits."""
    critical_events: Collection[str] = DEFAULT_CRITICAL_EVENTS
    """SSE ``event:`` names or JSON ``"type"`` values written at once with the batch before."""
    send_timeout: float | None = None
    """Seconds one write to the client may take before the stream is ended (None: no limit)."""
    merge_openai: bool = False
    """Merge consecutive OpenAI ``chat.completion.chunk`` content deltas of one choice."""
    websocket: bool = False
    """Batch JSON text messages of WebSocket connections into JSON array messages."""
    websocket_exclude: Collection[str] = frozenset()
    """Route templates (e.g. ``"/ws/raw/{room}"``) whose WebSocket connections stay unbatched."""
    content_types: Collection[str] = field(default=DEFAULT_CONTENT_TYPES)
    """Media types that are coalesced; every other response passes through untouched."""
    keepalive: float | None = None
    """Seconds of silence to the client (before the first token too) after which an SSE
    comment ``: ping`` is written (None: never). Coalesced responses only."""
    keepalive_ndjson: bytes | None = None
    """What ``keepalive`` writes to an NDJSON/JSONL stream, e.g. ``b"\\n"`` (None: nothing)."""
    stall_timeout: float | None = None
    """Seconds without a body message from the app after which the stream is ended with
    ``stall_event`` and the app cancelled (outcome ``stalled``; None: never)."""
    stall_event: bytes = DEFAULT_STALL_EVENT
    """The SSE event(s) written last when ``stall_timeout`` ends a stream (b"": none)."""
    stall_event_ndjson: bytes = DEFAULT_STALL_EVENT_NDJSON
    """The NDJSON/JSONL line(s) written last when ``stall_timeout`` ends a stream."""

    def __post_init__(self) -> None:
        _checks.seconds("window", self.window, default=0.05)
        _checks.count("max_events", self.max_events, default=16)
        _checks.count("max_bytes", self.max_bytes, default=65536)
        _checks.count("max_buffer_bytes", self.max_buffer_bytes, default=1048576)
        _checks.seconds("send_timeout", self.send_timeout, default=30.0, none=True)
        _checks.flag("merge_openai", self.merge_openai, default=False)
        _checks.flag("websocket", self.websocket, default=False)
        check_health(self)
        if not self.window > 0:
            raise ValueError(f"window={self.window!r} must be > 0 seconds (default 0.05)")
        _checks.unit_mistake(
            "window",
            self.window,
            limit=1.0,
            default=0.05,
            why="every batch after the first token may wait that long before it is written, "
            "seconds of lag for a token stream",
            stacklevel=3,  # the caller of CoalesceConfig(...), through __init__
        )
        if self.max_events < 1:
            raise ValueError(f"max_events={self.max_events!r} must be >= 1 (default 16)")
        if self.max_bytes < 1:
            raise ValueError(f"max_bytes={self.max_bytes!r} must be >= 1 (default 65536)")
        if self.max_buffer_bytes < self.max_bytes:
            raise ValueError(
                f"max_buffer_bytes={self.max_buffer_bytes!r} must be >= max_bytes="
                f"{self.max_bytes!r} (default 1048576)"
            )
        if self.send_timeout is not None and not self.send_timeout > 0:
            raise ValueError(
                f"send_timeout={self.send_timeout!r} must be > 0 seconds or None (default None)"
            )
        if isinstance(self.critical_events, str):
            raise ValueError(
                f"critical_events={self.critical_events!r} must be a collection of names, "
                "e.g. {'done', 'error'}"
            )
        if isinstance(self.content_types, str):
            raise ValueError(
                f"content_types={self.content_types!r} must be a collection of media types, "
                "e.g. {'text/event-stream'}"
            )
        if isinstance(self.websocket_exclude, str):
            raise ValueError(
                f"websocket_exclude={self.websocket_exclude!r} must be a collection of route "
                "templates, e.g. {'/ws/raw/{room}'}"
            )
        for template in self.websocket_exclude:
            if not isinstance(template, str) or not template.startswith("/"):
                raise ValueError(
                    f"websocket_exclude holds {template!r}: each must be a route template as "
                    "the metrics label it, starting with '/', e.g. '/ws/raw/{room}'"
                )
        if self.websocket_exclude and not self.websocket:
            raise ValueError(
                f"websocket_exclude={set(self.websocket_exclude)!r} has no effect without "
                "websocket=True: set websocket=True, or leave websocket_exclude out"
            )
        # Frozen: normalise through object.__setattr__ so lookups are set lookups.
        object.__setattr__(self, "critical_events", frozenset(self.critical_events))
        object.__setattr__(self, "websocket_exclude", frozenset(self.websocket_exclude))
        object.__setattr__(self, "content_types", frozenset(t.lower() for t in self.content_types))
