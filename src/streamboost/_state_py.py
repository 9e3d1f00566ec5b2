"""The per-chunk fields of a stream's objects, and its send, in Python.

``_speedups`` (C, built when a compiler is at hand) defines the same four base classes with the
same fields, and ``StreamBase.send`` there takes the two usual kinds of chunk itself. Here
``send`` is ``HTTPStream._send_slow``, which handles every message (see ``_http``). The Python
classes that subclass these (``StreamRecord``, ``EventScanner``, ``BatchFlusher``,
``RequestLifecycle``) set every field in their ``__init__``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._coalesce import Coalescer
    from ._sse import EventScanner
    from ._timing import Clock, StreamRecord
    from ._types import Message, Send


class RecordBase:
    """``StreamRecord``'s per-chunk counters and times."""

    __slots__ = (
        "bytes_out",
        "chunks_in",
        "content_events",
        "events",
        "last_body_at",
        "last_token_at",
        "writes",
    )

    chunks_in: int
    events: int
    content_events: int
    writes: int
    bytes_out: int
    last_body_at: float | None
    last_token_at: float | None


class ScannerBase:
    """``EventScanner``'s learned event shape."""

    __slots__ = ("pending", "prefix", "prefix_len", "suffix")

    prefix: bytes
    suffix: bytes
    prefix_len: int
    pending: int


class FlusherBase:
    """``BatchFlusher``'s buffer."""

    __slots__ = (
        "_inflight",
        "_max_buffer",
        "_max_bytes",
        "_max_events",
        "_pending",
        "_ready",
        "_ready_bytes",
        "_ready_content",
        "_ready_events",
        "_wanted",
        "error",
    )

    _ready: list[bytes]
    _pending: list[bytes]
    error: BaseException | None
    _ready_bytes: int
    _ready_events: int
    _ready_content: int
    _inflight: int
    _max_events: int
    _max_bytes: int
    _max_buffer: int
    _wanted: bool


class StreamBase:
    """``RequestLifecycle``'s links to its record, scanner and coalescer."""

    __slots__ = ("_clock", "_coalescer", "_direct", "_done", "_scanner", "_send", "record")

    record: StreamRecord
    _scanner: EventScanner | None
    _coalescer: Coalescer | None
    _done: asyncio.Future[None]
    _send: Send
    _clock: Clock
    _direct: bool

    def send(self, message: Message) -> Awaitable[None]:
        """The app's send (``HTTPStream`` binds its ``_send_slow`` here directly)."""
        return self._send_slow(message)

    def _send_slow(self, message: Message) -> Awaitable[None]:
        raise NotImplementedError  # HTTPStream's
