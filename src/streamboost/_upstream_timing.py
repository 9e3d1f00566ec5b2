"""The model's share of TTFT: event hooks that time an httpx client's calls to a model provider.

``UpstreamTiming`` is a pair of httpx event hooks (``request`` and ``response``). Inside a
StreamBoost request (``_stream.current_record`` is set) the request hook notes the time; the
response hook, which httpx calls once the response headers are in, records the phase
``<phase>_first_byte`` and wraps the response's byte stream in a watcher that records the phase
``<phase>`` at the first content event of the upstream stream. Both go through
``_phases._add``, the helper ``phase()`` uses, so they are exported like any other phase.

The watcher reads only the chunks up to the first content event, with the same
``EventScanner`` that finds StreamBoost's own first token; afterwards each chunk costs one
call that hands the inner stream's awaitable straight back. A response that is not a stream
(JSON) ends the phase at the end of its body; a compressed stream, at its first body chunk.
A response that ends, fails or is closed before a first token ends the phase then.

The hooks also split httpx's read timeout: ``first_byte_timeout`` bounds the wait for the
response headers and the request's own read timeout the reads after them (httpcore reads
``request.extensions["timeout"]`` at each read, so the hooks swap the value around the
headers; a request sent with a read timeout of its own keeps it).

httpx is never imported here: the watcher subclasses the ``AsyncByteStream`` of the client's
own package, so clients of ``httpx`` and of ``httpx2`` (which the openai SDK uses) both work.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from typing import Any, Final

from ._phases import _add, _clock
from ._stream import EventScanner, current_record, stream_format
from ._stream._presets import DEFAULT_METADATA_EVENTS, PRESETS

# Where the request hook leaves its note for the response hook: (started, swapped timeout).
_NOTE: Final = "streamboost.upstream"

# SSE event names of model providers that carry no output tokens: StreamBoost's own default
# metadata names and those of the `auto` preset (Anthropic Messages, the OpenAI Responses API),
# so an upstream stream's first token is found by the same rules as StreamBoost's own.
_METADATA: Final = (
    frozenset(name.encode() for name in DEFAULT_METADATA_EVENTS) | PRESETS["auto"].metadata
)
PROVIDER_METADATA_EVENTS: Final = frozenset(name.decode() for name in _METADATA)

# How a watcher finds the first token: at the end of the body, at the first non-empty chunk,
# or at the first content event the scanner sees.
_AT_END: Final = 0
_AT_FIRST_CHUNK: Final = 1
_AT_FIRST_EVENT: Final = 2


class UpstreamTiming:
    """httpx event hooks recording the model's time to first byte and first token.

    Add ``request`` to ``client.event_hooks["request"]`` and ``response`` to
    ``client.event_hooks["response"]`` (``instrument_upstream`` does).
    """

    __slots__ = ("first_byte_phase", "first_byte_timeout", "phase", "read_timeout")

    def __init__(
        self,
        *,
        phase: str,
        first_byte: bool,
        first_byte_timeout: float | None,
        read_timeout: float | None,
    ) -> None:
        self.phase = phase
        self.first_byte_phase = f"{phase}_first_byte" if first_byte else None
        self.first_byte_timeout = first_byte_timeout
        self.read_timeout = read_timeout  # the client's: a request with another keeps its own

    async def request(self, request: Any) -> None:
        extensions = request.extensions
        swapped = None
        if self.first_byte_timeout is not None:
            timeout = extensions.get("timeout")
            if isinstance(timeout, dict) and timeout.get("read") == self.read_timeout:
                extensions["timeout"] = {**timeout, "read": self.first_byte_timeout}
                swapped = timeout
        started = _clock() if current_record.get() is not None else None
        if started is not None or swapped is not None:
            extensions[_NOTE] = (started, swapped)

    async def response(self, response: Any) -> None:
        extensions = response.request.extensions
        note = extensions.pop(_NOTE, None)
        if note is None:
            return
        started, swapped = note
        if swapped is not None:
            extensions["timeout"] = swapped  # reads after the headers: the request's own
        if started is None:
            return
        if self.first_byte_phase is not None:
            _add(self.first_byte_phase, started)
        headers = response.headers
        fmt = stream_format(headers.get("content-type", ""))
        encoding = headers.get("content-encoding", "identity").strip().lower()
        if not fmt:
            mode, scanner = _AT_END, None
        elif encoding not in ("", "identity"):
            mode, scanner = _AT_FIRST_CHUNK, None  # compressed bytes cannot be scanned
        else:
            mode = _AT_FIRST_EVENT
            scanner = EventScanner(fmt, critical=None, metadata=_METADATA)
        watcher = _watcher_class(type(response.stream))
        response.stream = watcher(response.stream, self.phase, started, mode, scanner)


def is_timing_hook(hook: object) -> bool:
    return isinstance(getattr(hook, "__self__", None), UpstreamTiming)


_CLASSES: dict[str, type[Any]] = {}


def _watcher_class(stream_type: type[Any]) -> type[Any]:
    """The watcher for streams of ``stream_type``'s package (``httpx`` or ``httpx2``): its
    responses only iterate an ``AsyncByteStream`` of their own package."""
    package = stream_type.__module__.partition(".")[0]
    found = _CLASSES.get(package)
    if found is None:
        base: type[Any] = sys.modules[package].AsyncByteStream
        found = _CLASSES[package] = type("FirstTokenWatcher", (_Watcher, base), {"__slots__": ()})
    return found


class _Watcher:
    """Wraps a response's byte stream; records the phase at the first token, then only
    passes the inner stream's chunks on."""

    __slots__ = ("_inner", "_mode", "_name", "_next", "_scanner", "_started")

    def __init__(
        self, inner: Any, name: str, started: float, mode: int, scanner: EventScanner | None
    ) -> None:
        self._inner = inner
        self._name = name
        self._started: float | None = started  # None once the phase is recorded
        self._mode = mode
        self._scanner = scanner
        self._next: Callable[[], Awaitable[bytes]] = _not_iterated

    def __aiter__(self) -> _Watcher:
        self._next = self._inner.__aiter__().__anext__
        return self

    def __anext__(self) -> Awaitable[bytes]:
        if self._started is None:
            return self._next()  # past the first token: the inner awaitable itself
        return self._watch(self._next)

    async def _watch(self, step: Callable[[], Awaitable[bytes]]) -> bytes:
        try:
            chunk = await step()
        except BaseException:  # the end of the body, a read error, a cancellation
            self._record()
            raise
        mode = self._mode
        if mode == _AT_FIRST_EVENT:
            scanner = self._scanner
            assert scanner is not None
            scanner.feed(chunk)
            if scanner.content:
                self._record()
        elif mode == _AT_FIRST_CHUNK and chunk:
            self._record()
        return chunk

    def _record(self) -> None:
        started = self._started
        if started is not None:
            self._started = None
            self._scanner = None
            _add(self._name, started)

    async def aclose(self) -> None:
        self._record()
        await self._inner.aclose()


def _not_iterated() -> Awaitable[bytes]:
    raise RuntimeError("iterate the stream with `async for`, which calls __aiter__ first")


__all__ = ["PROVIDER_METADATA_EVENTS", "UpstreamTiming", "is_timing_hook"]
