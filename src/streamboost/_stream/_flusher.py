"""The write side of coalescing: one flusher task per stream, the window timer, the waits.

``Flusher`` puts a ``Coalescer``'s batches on the wire with the coalescer's ``write``, from a
task of its own. It reads the batch through the coalescer's kernel fields (``ready``,
``inflight``, ``wanted``, ``error``) and ``take``; the coalescer decides when a flush is
wanted, this class only how it happens.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Protocol


class Batch(Protocol):
    """What the flusher reads of the coalescer that owns it."""

    loop: asyncio.AbstractEventLoop
    ready: list[bytes] | None
    ready_bytes: int
    ready_content: int
    pending_bytes: int
    inflight: int
    max_buffer: int
    wanted: bool
    error: BaseException | None
    lag: Lag

    def take(self, *, everything: bool) -> list[bytes]: ...

    def take_content(self) -> int: ...

    def append_final(self, data: bytes) -> None: ...

    def close(self, error: BaseException | None = None) -> None: ...

    def write(self, parts: list[bytes], content: int, more: bool) -> Awaitable[None]: ...

    def ping(self, data: bytes) -> Awaitable[None]: ...


class Lag(Protocol):
    def saw(self, asked: float, loop: asyncio.AbstractEventLoop) -> None: ...


class Closable(Protocol):
    def close(self) -> None: ...


class Flusher:
    """One stream's flusher task, window timer and waiting sends."""

    __slots__ = (
        "_batch",
        "_final",
        "_flushed",
        "_force",
        "_kick",
        "_ping",
        "_room",
        "_task",
        "_timer",
        "loop",
    )

    def __init__(self, batch: Batch) -> None:
        self._batch = batch
        self.loop = batch.loop
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self._kick: asyncio.Handle | None = None  # starts the flusher on the next loop turn
        self._force = False  # the next flush also writes an unfinished event
        self._final = False  # the next flush is the body's last write
        self._flushed: asyncio.Future[None] | None = None
        self._room: asyncio.Future[None] | None = None
        self._ping: bytes | None = None  # a keepalive the next run writes if nothing else

    async def wait_for_room(self) -> None:
        batch = self._batch
        while (
            batch.error is None
            and batch.ready_bytes + batch.pending_bytes + batch.inflight >= batch.max_buffer
        ):
            if not batch.ready and not batch.inflight:
                # Only an unfinished event is left: write it, split. While a write is in
                # flight, its end may make room: the event waits whole (it was split early).
                self._force = True
            self.wake()
            room = self._room = self.loop.create_future()
            await room
        if batch.error is not None:
            raise batch.error

    async def flush_all(self, data: bytes, content: int, *, final: bool) -> None:
        batch = self._batch
        if batch.error is not None:
            raise batch.error
        if not batch.inflight:
            # No write in flight, so the flusher is idle: write here, saving two task switches.
            self._cancel_timer()
            parts = batch.take(everything=True)
            batch.wanted = False
            if data:
                parts.append(data)
            content += batch.take_content()
            if final and self._task is not None:
                self._task.cancel()
            if parts or final:
                await batch.write(parts, content, not final)
            return
        if data:
            batch.append_final(data)
        batch.ready_content += content
        self._final = final
        flushed = self._flushed = self.loop.create_future()
        self.wake()
        await flushed
        if batch.error is not None:
            raise batch.error

    def arm(self, deadline: float, now: float) -> None:
        if deadline <= now:
            self.wake()
        else:
            self._timer = self.loop.call_at(deadline, self._expire)

    def _expire(self) -> None:
        timer = self._timer
        self._timer = None
        if timer is not None:
            self._batch.lag.saw(timer.when(), self.loop)  # fired late: does the loop lag?
        if self._batch.ready:
            # The app is yielding, so the flush is due now: no point deferring the flusher.
            self.wake(defer_start=False)

    def wake(self, *, defer_start: bool = True) -> None:
        self._batch.wanted = True
        if self._task is None:
            if not defer_start:
                self._start()
            elif self._kick is None:
                # From inside the app's send: start the flusher on the next loop turn if a
                # flush is still wanted then; an app that does not yield before its body ends
                # never needs one (its last send writes).
                self._kick = self.loop.call_soon(self._start)
            return

    def _start(self) -> None:
        if self._kick is not None:
            self._kick.cancel()
            self._kick = None
        batch = self._batch
        if batch.wanted and self._task is None and batch.error is None:
            self._task = self.loop.create_task(self._run())

    def idle(self) -> bool:
        """No task, no timer and no start to come: the stream's next write may be its own."""
        return self._task is None and self._timer is None and self._kick is None

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def ping(self, data: bytes) -> None:
        """Write ``data`` from the flusher task unless a write is due anyway (``_health``)."""
        self._ping = data
        self.wake(defer_start=False)

    def close(self) -> None:
        """Cancel the timers and the task; let waiting sends go on (they see ``error``)."""
        self._cancel_timer()
        if self._kick is not None:
            self._kick.cancel()
            self._kick = None
        task = self._task
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()
        for waiter in (self._room, self._flushed):
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        self._room = self._flushed = None

    async def _run(self) -> None:
        batch = self._batch
        while batch.wanted:
            batch.wanted = False
            final = self._final
            flushed = self._flushed
            self._flushed = None
            self._cancel_timer()
            parts = batch.take(everything=self._force or flushed is not None)
            self._force = False
            content = batch.take_content()
            ping = self._ping
            self._ping = None
            if parts or final or ping is not None:
                try:
                    if parts or final:
                        await batch.write(parts, content, not final)
                    elif ping is not None:
                        await batch.ping(ping)  # nothing else to write: the keepalive
                except Exception:
                    # ``write`` recorded the error; the waiting send raises it.
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
        # Idle: the task ends rather than wait, so an open stream between bursts holds no
        # task, coroutine frame or future; the next wanted flush starts another.
        self._task = None
