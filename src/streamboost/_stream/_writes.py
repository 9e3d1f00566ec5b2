"""The coalescer's writes to the client, each bounded by ``send_timeout``.

A mixin of ``_coalescer.CoalescerCore`` (no slots of its own, so it sits beside the kernel's C
``BatchBase``): ``write`` is every counted write (the flusher's batches, a write at once, the
final flush), ``extra`` and ``ping`` the uncounted ones (a keepalive, the stall event). A failed
or timed-out write closes the coalescer, so the app's next send raises its error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, Protocol

from ._table import WRITE_NOW


class _Core(Protocol):
    """What the writes use of the coalescer (its kernel fields, config and methods)."""

    loop_clock: Any
    inflight: int
    last_write: float
    error: BaseException | None
    _config: Any
    flusher: Any
    last_event: float
    wanted: bool
    _now: list[bytes] | None

    def take(self, *, everything: bool) -> list[bytes]: ...

    def take_content(self) -> int: ...

    def due_parts(self, now: float) -> list[bytes]: ...

    def write(
        self, parts: list[bytes], content: int, more: bool, at: float | None = None
    ) -> Awaitable[None]: ...

    def put(self, parts: list[bytes], content: int, more: bool) -> Awaitable[None]: ...

    def put_raw(self, data: bytes, more: bool) -> Awaitable[None] | None: ...

    def quiet(self) -> bool: ...

    def close(self, error: BaseException | None = None) -> None: ...

    def extra(self, data: bytes, more: bool) -> Awaitable[None]: ...

    def bounded(self, written: Awaitable[None], size: int, detail: str) -> Awaitable[None]: ...


class BoundedWrites:
    """``write``, ``extra`` and ``ping`` of a ``CoalescerCore`` (see the module docstring)."""

    __slots__ = ()
    _now: list[bytes] | None  # CoalescerCore's slot: what the caller writes after WRITE_NOW

    def take_due(self: _Core, now: float) -> int:
        """A whole event joined a batch due by ``now``, no write in flight: the caller writes
        the batch (``WRITE_NOW``), not the flusher, whose turn would come later still."""
        self._now = self.due_parts(now)
        return WRITE_NOW

    def write_due(self: _Core, now: float) -> Awaitable[None]:
        """``take_due``, written: the kernel's sender calls this (its chunk joined the batch)."""
        return self.write(self.due_parts(now), self.take_content(), True, now)

    def due_parts(self: _Core, now: float) -> list[bytes]:
        """The waiting batch, taken from the flusher (its timer is cancelled)."""
        if self.flusher is not None:
            self.flusher.cancel_timer()
        self.last_event = now
        self.wanted = False
        return self.take(everything=False)

    async def write(
        self: _Core, parts: list[bytes], content: int, more: bool, at: float | None = None
    ) -> None:
        """One write (at loop time ``at``, else now), bounded by ``send_timeout``; a failure
        ends the stream."""
        self.last_write = self.loop_clock() if at is None else at
        await self.bounded(
            self.put(parts, content, more),
            sum(map(len, parts)),
            ": the client stopped reading and the stream was ended",
        )

    def ping(self: _Core, data: bytes) -> Awaitable[None]:
        """A keepalive write (``raw``), bounded like ``write``; never counted in the record."""
        return self.extra(data, True)

    async def extra(self: _Core, data: bytes, more: bool) -> None:
        """A ``raw`` write when ``quiet()`` (else nothing), bounded like ``write``."""
        if self.error is not None or not self.quiet():
            return
        written = self.put_raw(data, more)
        if written is not None:  # None: no raw write (WebSocket batching)
            await self.bounded(written, len(data), "")

    async def bounded(self: _Core, written: Awaitable[None], size: int, detail: str) -> None:
        """Await one write of ``size`` bytes (a final flush waits for it) within
        ``send_timeout``; a failure or a timeout closes the coalescer, so the app's next send
        raises it."""
        self.inflight = size
        timeout = self._config.send_timeout
        try:
            if timeout is None:
                await written
            else:
                async with asyncio.timeout(timeout):
                    await written
        except TimeoutError as exc:
            error = OSError(
                f"send_timeout={timeout!r} s passed while writing to the client{detail}"
            )
            self.close(error)
            raise error from exc
        except Exception as exc:
            self.close(exc)
            raise
        finally:
            self.inflight = 0
