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


class _Core(Protocol):
    """What the writes use of the coalescer (its kernel fields, config and methods)."""

    loop_clock: Any
    inflight: int
    last_write: float
    error: BaseException | None
    _config: Any

    def put(self, parts: list[bytes], content: int, more: bool) -> Awaitable[None]: ...

    def put_raw(self, data: bytes, more: bool) -> Awaitable[None] | None: ...

    def quiet(self) -> bool: ...

    def close(self, error: BaseException | None = None) -> None: ...

    def extra(self, data: bytes, more: bool) -> Awaitable[None]: ...

    def bounded(self, written: Awaitable[None], size: int, detail: str) -> Awaitable[None]: ...


class BoundedWrites:
    """``write``, ``extra`` and ``ping`` of a ``CoalescerCore`` (see the module docstring)."""

    __slots__ = ()

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
