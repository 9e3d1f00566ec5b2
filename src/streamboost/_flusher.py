"""The write side of coalescing: one flusher task per stream, the window timer, backpressure.

``BatchFlusher`` holds a stream's buffer (whole events ready to go, the start of an unfinished
one) and puts batches on the wire through the owner's ``write`` coroutine, each bounded by
``send_timeout``. ``Coalescer`` subclasses it with the flush rules, i.e. when a chunk buffers,
goes out at once or wakes the flusher; this module decides only how a wanted flush happens.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, NoReturn

from ._config import CoalesceConfig
from ._native import FlusherBase

logger = logging.getLogger("streamboost")

Write = Callable[[list[bytes], int, bool], Awaitable[None]]
"""``write(parts, content_events, more_body)``: put the joined parts on the wire."""


_warned = False


def on_asyncio() -> bool:
    """True under an asyncio loop: the flusher's tasks and timers need one. Elsewhere (trio)
    streams pass through uncoalesced, and a warning says so once."""
    global _warned
    if asyncio._get_running_loop() is not None:
        return True
    if not _warned:
        _warned = True
        logger.warning(
            "streamboost: coalescing needs an asyncio event loop and this server runs another "
            "(trio?); streams pass through uncoalesced, still timed and counted"
        )
    return False


class Ready(asyncio.Future[None]):
    """What the app's send returns for a buffered chunk: a future that is already done.

    Awaiting it costs what awaiting any done future costs (no coroutine per chunk). It is also
    a ``collections.abc.Coroutine`` (``send``/``throw``/``close``, registered below), so
    ``asyncio.create_task(send(message))``, ``ensure_future`` and anyio's
    ``start_soon(send, message)``, which ask for a coroutine, accept it; as a coroutine it
    finishes at its first step with ``None``. One per stream, reused for every buffered chunk.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop=loop)
        self.set_result(None)

    def send(self, value: object) -> NoReturn:
        raise StopIteration

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> NoReturn:
        if val is None:
            raise typ
        raise val.with_traceback(tb) if tb is not None else val

    def close(self) -> None:
        return None


Coroutine.register(Ready)


class BatchFlusher(FlusherBase):
    """One stream's buffer and its flusher task; ``Coalescer`` adds the flush rules."""

    # The buffer's fields are FlusherBase's (C when built: see ``_native``).
    __slots__ = (
        "_batch_at",
        "_config",
        "_final",
        "_flushed",
        "_force",
        "_kick",
        "_last_write",
        "_now",
        "_now_content",
        "_pending_bytes",
        "_room",
        "_task",
        "_timer",
        "_wake",
        "_write",
        "eager",
        "loop",
    )

    def __init__(self, write: Write, config: CoalesceConfig, *, eager: bool = True) -> None:
        self._write = write
        self._config = config
        self._max_events = config.max_events
        self._max_bytes = config.max_bytes
        self._max_buffer = config.max_buffer_bytes
        self.loop = asyncio.get_running_loop()
        self.eager = eager
        self.error: BaseException | None = None
        self._ready: list[bytes] = []  # whole events, oldest first
        self._ready_bytes = 0
        self._ready_events = 0
        self._ready_content = 0
        self._pending: list[bytes] = []  # the start of an event that has not ended yet
        self._pending_bytes = 0
        self._inflight = 0  # bytes of the write the flusher has handed to the server
        self._batch_at: float | None = None  # loop time the oldest buffered byte came in
        self._last_write = float("-inf")
        self._now: list[bytes] = []  # parts the caller writes itself after WRITE_NOW
        self._now_content = 0
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self._kick: asyncio.Handle | None = None  # starts the flusher on the next loop turn
        self._wake: asyncio.Future[None] | None = None
        self._wanted = False  # the flusher should write the ready events as soon as it can
        self._force = False  # the next flush also writes an unfinished event
        self._final = False  # the next flush is the body's last write
        self._flushed: asyncio.Future[None] | None = None
        self._room: asyncio.Future[None] | None = None

    async def _wait_for_room(self) -> None:
        while (
            self.error is None
            and self._ready_bytes + self._pending_bytes + self._inflight >= self._max_buffer
        ):
            if not self._ready:
                self._force = True  # only an unfinished event is left: write it, split
            self._wakeup()
            room = self._room = self.loop.create_future()
            await room
        if self.error is not None:
            raise self.error

    # -- the owner's side ----------------------------------------------------------------

    def finish(self, data: bytes, content: int) -> Awaitable[None]:
        """Write everything buffered plus ``data`` as the body's last write."""
        return self._flush_all(data, content, final=True)

    def drain(self) -> Awaitable[None]:
        """Write everything buffered now (before a message that must not overtake it)."""
        return self._flush_all(b"", 0, final=False)

    def close(self, error: BaseException | None = None) -> None:
        """Stop: cancel the timer and the flusher, drop what is buffered. Idempotent.

        A send waiting on this stream then raises ``error`` (if given).
        """
        if error is not None and self.error is None:
            self.error = error
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._kick is not None:
            self._kick.cancel()
            self._kick = None
        task = self._task
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()
        self._ready.clear()
        self._pending.clear()
        self._ready_bytes = self._pending_bytes = self._inflight = 0
        self._release()

    # -- the flusher's side --------------------------------------------------------------

    async def _send(self, parts: list[bytes], content: int, more: bool) -> None:
        """One write, bounded by ``send_timeout``; a failure ends the stream."""
        self._last_write = self.loop.time()
        self._inflight = sum(map(len, parts))
        timeout = self._config.send_timeout
        try:
            if timeout is None:
                await self._write(parts, content, more)
            else:
                async with asyncio.timeout(timeout):
                    await self._write(parts, content, more)
        except TimeoutError as exc:
            error = OSError(
                f"send_timeout={timeout!r} s passed while writing to the client: "
                "the client stopped reading and the stream was ended"
            )
            self.close(error)
            raise error from exc
        except Exception as exc:
            self.close(exc)
            raise
        finally:
            self._inflight = 0

    async def _flush_all(self, data: bytes, content: int, *, final: bool) -> None:
        if self.error is not None:
            raise self.error
        if not self._inflight:
            # No write in flight, so the flusher is idle: write here, saving two task switches.
            parts = self._take(everything=True)
            self._wanted = False
            if data:
                parts.append(data)
            content += self._ready_content
            self._ready_content = 0
            task = self._task
            if final and task is not None:
                task.cancel()
            if parts or final:
                await self._send(parts, content, not final)
            return
        if data:
            self._ready.extend(self._pending)
            self._ready.append(data)
            self._pending.clear()
            self._pending_bytes = 0
        self._ready_content += content
        self._final = final
        flushed = self._flushed = self.loop.create_future()
        self._wakeup()
        await flushed
        if self.error is not None:
            raise self.error

    def _arm(self, deadline: float, now: float) -> None:
        if deadline <= now:
            self._wakeup()
        else:
            self._timer = self.loop.call_at(deadline, self._expire)

    def _expire(self) -> None:
        self._timer = None
        if self._ready:
            # The app is yielding, so the flush is due now: no point deferring the flusher.
            self._wakeup(defer_start=False)

    def _wakeup(self, *, defer_start: bool = True) -> None:
        self._wanted = True
        if self._task is None:
            if not defer_start:
                self._start()
            elif self._kick is None:
                # From inside the app's send: start the flusher on the next loop turn if a
                # flush is still wanted then; an app that does not yield before its body ends
                # never needs one (its last send writes).
                self._kick = self.loop.call_soon(self._start)
            return
        wake = self._wake
        if wake is not None:
            self._wake = None
            if not wake.done():
                wake.set_result(None)

    def _start(self) -> None:
        if self._kick is not None:
            self._kick.cancel()
            self._kick = None
        if self._wanted and self._task is None and self.error is None:
            self._task = self.loop.create_task(self._run())

    def _release(self) -> None:
        """Let waiting sends go on (they check ``error`` and the buffer again)."""
        for waiter in (self._room, self._flushed):
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        self._room = self._flushed = None

    def _take(self, *, everything: bool) -> list[bytes]:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        parts = self._ready
        self._ready = []
        self._ready_bytes = self._ready_events = 0
        if everything and self._pending:
            parts.extend(self._pending)
            self._pending.clear()
            self._pending_bytes = 0
        self._batch_at = self.loop.time() if self._pending else None
        return parts

    async def _run(self) -> None:
        while True:
            if not self._wanted:
                wake = self._wake = self.loop.create_future()
                await wake
            self._wanted = False
            final = self._final
            flushed = self._flushed
            self._flushed = None
            parts = self._take(everything=self._force or flushed is not None)
            self._force = False
            content = self._ready_content
            self._ready_content = 0
            if parts or final:
                try:
                    await self._send(parts, content, not final)
                except Exception:
                    # ``_send`` recorded the error; the waiting send raises it.
                    if flushed is not None and not flushed.done():
                        flushed.set_result(None)
                    return
            if flushed is not None and not flushed.done():
                flushed.set_result(None)
            if final:
                return
            room = self._room
            if room is not None:
                self._room = None
                if not room.done():
                    room.set_result(None)
