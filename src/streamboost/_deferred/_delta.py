"""``delta_buffer``: persist streamed text every ``interval`` or ``min_chars``, and always at exit.

``append()`` is what the per-token path calls: a list append and an int add. A ticker task
does the writes. The last write runs in a task the defer() runner tracks, shielded from the
caller's cancellation, so a client disconnect or a cancelled generator still persists the tail,
and lifespan shutdown waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType

from .. import _checks
from . import _defer
from ._config import RetryPolicy
from ._defer import _label
from ._sync import as_async

logger = logging.getLogger("streamboost.deferred")


@dataclass(frozen=True, slots=True)
class Delta:
    """Text appended since the last successful write.

    ``offset`` is the number of characters persisted before it, so a sink can write
    idempotently (``content = left(content, offset) || text``); ``final`` marks the last write.
    """

    text: str
    offset: int
    final: bool


DeltaSink = Callable[[Delta], Awaitable[object]] | Callable[[Delta], object]


class DeltaBuffer:
    def __init__(
        self, sink: DeltaSink, *, interval: float, min_chars: int, retries: int | RetryPolicy
    ) -> None:
        if not callable(sink):
            raise TypeError(f"sink={sink!r} must be callable: async def sink(delta): ...")
        _checks.seconds("interval", interval, default=0.2)
        _checks.count("min_chars", min_chars, default=1024)
        if interval <= 0:
            raise ValueError(f"interval={interval!r} must be > 0 seconds (default 0.2)")
        if min_chars < 1:
            raise ValueError(f"min_chars={min_chars!r} must be >= 1 (default 1024)")
        self._sink_fn = sink
        self._sink: Callable[[Delta], Awaitable[object]] = as_async(sink)
        self._interval = interval
        self._min_chars = min_chars
        self._retry = RetryPolicy.coerce(retries)
        self._parts: list[str] = []
        self._chars = 0
        self.persisted = 0  # characters written by the sink so far
        self.writes = 0
        self._closed = False
        self._wake: asyncio.Future[None] | None = None
        self._ticker: asyncio.Task[None] | None = None

    def append(self, text: str) -> None:
        """Add streamed text; never waits."""
        self._parts.append(text)
        self._chars += len(text)
        if self._chars >= self._min_chars:
            wake = self._wake
            if wake is not None and not wake.done():
                wake.set_result(None)

    @property
    def pending(self) -> int:
        """Characters appended but not yet persisted."""
        return self._chars

    async def __aenter__(self) -> DeltaBuffer:
        if self._ticker is not None or self._closed:
            raise RuntimeError("a delta_buffer is entered once")
        self._ticker = asyncio.create_task(self._tick(), name="streamboost-delta-buffer")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._closed = True
        wake = self._wake
        if wake is not None and not wake.done():
            wake.set_result(None)
        final = _defer._deferrer.track(self._finish())
        # Shielded: if this task is cancelled (client gone), the last write still completes and
        # lifespan shutdown drains it.
        await asyncio.shield(final)

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._closed:
            if self._chars < self._min_chars:
                self._wake = loop.create_future()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._interval):
                        await self._wake
            if self._closed:
                return
            if self._chars:
                try:
                    await self._write(final=False)
                except Exception as exc:
                    logger.warning("delta_buffer: write failed, kept for the next one: %r", exc)
                    await asyncio.sleep(self._interval)

    async def _finish(self) -> None:
        ticker = self._ticker
        if ticker is not None:
            await ticker  # lets an interval write in progress finish, in order
        attempt = 0
        while True:
            try:
                await self._write(final=True)
                return
            except Exception as exc:
                if attempt >= self._retry.retries:
                    # Size and position only: the text is the user's content.
                    logger.error(
                        "delta_buffer: last write to %s failed after %d attempts; %d characters "
                        "at offset %d not persisted",
                        _label(self._sink_fn), attempt + 1, self._chars, self.persisted,
                        exc_info=exc,
                    )  # fmt: skip
                    return
                attempt += 1
                await asyncio.sleep(self._retry.delay(attempt - 1))

    async def _write(self, *, final: bool) -> None:
        count = len(self._parts)
        text = "".join(self._parts[:count])
        await self._sink(Delta(text, self.persisted, final))
        del self._parts[:count]
        self._chars -= len(text)
        self.persisted += len(text)
        self.writes += 1


def delta_buffer(
    sink: DeltaSink,
    *,
    interval: float = 0.2,
    min_chars: int = 1024,
    retries: int | RetryPolicy = 3,
) -> DeltaBuffer:
    """``async with delta_buffer(sink) as buf: buf.append(token)``.

    ``sink(Delta)`` (async or sync) runs every ``interval`` seconds when text is pending, as
    soon as ``min_chars`` characters are pending, and once with ``final=True`` at exit, also on
    cancellation, client disconnect or an error in the body.
    """
    return DeltaBuffer(sink, interval=interval, min_chars=min_chars, retries=retries)
