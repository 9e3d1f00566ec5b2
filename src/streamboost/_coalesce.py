"""The batching state machine: buffer, flush rules, window timer, one flusher task per stream.

``Coalescer`` knows bytes and event boundaries, nothing of ASGI: the owner feeds it chunks
(with how much of each chunk ends at an event boundary) and gives it a ``write`` coroutine
that puts joined parts on the wire.

- A chunk is written at once, by the caller, while ``eager`` is set (until the first token has
  gone out) or when the stream has been idle for a window: batching never delays an event
  that has no company to wait for.
- Otherwise chunks buffer. A batch is written when ``window`` seconds have passed since its
  first byte was buffered, when it holds ``max_events`` events or ``max_bytes`` bytes, or at
  once (with everything before it) when a critical event arrives.
- Writes are done by one flusher task per stream, so the app's send returns at once while a
  write to a slow client is pending; new chunks join the next batch. Past ``max_buffer_bytes``
  (counting the write in flight) the app's send waits.
- An unfinished event stays buffered until it ends, so every event sits whole in one write;
  only a full buffer or the end of the body writes an unfinished event.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Final

from ._config import CoalesceConfig

Write = Callable[[list[bytes], int, bool], Awaitable[None]]
"""``write(parts, content_events, more_body)``: put the joined parts on the wire."""

BUFFERED: Final = 0
WRITE_NOW: Final = 1
FULL: Final = 2


class Coalescer:
    """Batches one stream's chunks into few writes; see the module docstring for the rules."""

    __slots__ = (
        "_batch_at",
        "_config",
        "_final",
        "_flushed",
        "_force",
        "_inflight",
        "_kick",
        "_last_write",
        "_loop",
        "_max_buffer",
        "_max_bytes",
        "_max_events",
        "_now",
        "_now_content",
        "_pending",
        "_pending_bytes",
        "_ready",
        "_ready_bytes",
        "_ready_content",
        "_ready_events",
        "_room",
        "_task",
        "_timer",
        "_wake",
        "_wanted",
        "_write",
        "eager",
        "error",
    )

    def __init__(self, write: Write, config: CoalesceConfig, *, eager: bool = True) -> None:
        self._write = write
        self._config = config
        self._max_events = config.max_events
        self._max_bytes = config.max_bytes
        self._max_buffer = config.max_buffer_bytes
        self._loop = asyncio.get_running_loop()
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

    # -- the caller's side ---------------------------------------------------------------

    def offer(self, data: bytes, complete: int, events: int, content: int, critical: bool) -> int:
        """Take one chunk whose first ``complete`` bytes end at an event boundary.

        Returns ``BUFFERED``, or ``WRITE_NOW``/``FULL``: then the caller awaits ``settle``.
        """
        ready = self._ready
        if ready and complete == len(data) and not self._pending:
            # The usual chunk: whole events joining a batch that is already waiting.
            ready.append(data)
            self._ready_bytes += complete
            self._ready_events += events
            self._ready_content += content
            if not self._wanted and (
                critical
                or self._ready_events >= self._max_events
                or self._ready_bytes >= self._max_bytes
            ):
                self._wakeup()
            if self._ready_bytes + self._inflight < self._max_buffer:
                return BUFFERED
            return FULL
        return self._offer(data, complete, events, content, critical)

    def _offer(self, data: bytes, complete: int, events: int, content: int, critical: bool) -> int:
        now = self._loop.time()
        if (
            complete
            and not self._ready
            and not self._inflight
            and (self.eager or now - self._last_write >= self._config.window)
        ):
            self._now = self._complete(data, complete)
            self._now_content = content
            self._batch_at = now if self._pending else None
            return WRITE_NOW
        if self._batch_at is None:
            self._batch_at = now
        if complete:
            was_empty = not self._ready
            self._ready_bytes += self._pending_bytes + complete
            self._ready.extend(self._complete(data, complete))
            self._ready_events += events
            self._ready_content += content
            if (
                critical
                or self._ready_events >= self._max_events
                or self._ready_bytes >= self._max_bytes
            ):
                self._wakeup()
            elif was_empty:
                self._arm(self._batch_at + self._config.window, now)
        else:
            self._pending.append(data)
            self._pending_bytes += len(data)
        buffered = self._ready_bytes + self._pending_bytes + self._inflight
        return FULL if buffered >= self._max_buffer else BUFFERED

    def _complete(self, data: bytes, complete: int) -> list[bytes]:
        """Take the unfinished event's start plus ``data[:complete]``; keep the rest pending."""
        parts = self._pending
        parts.append(data if complete == len(data) else data[:complete])
        self._pending = [data[complete:]] if complete < len(data) else []
        self._pending_bytes = len(data) - complete
        return parts

    def settle(self, code: int) -> Awaitable[None]:
        """Finish what ``offer`` asked for: write the chunk now, or wait for buffer room."""
        if code == WRITE_NOW:  # the write's own coroutine: no layer of ours around it
            parts = self._now
            self._now = []
            return self._send(parts, self._now_content, True)
        return self._wait_for_room()

    async def _wait_for_room(self) -> None:
        while (
            self.error is None
            and self._ready_bytes + self._pending_bytes + self._inflight >= self._max_buffer
        ):
            if not self._ready:
                self._force = True  # only an unfinished event is left: write it, split
            self._wakeup()
            room = self._room = self._loop.create_future()
            await room
        if self.error is not None:
            raise self.error

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
        self._last_write = self._loop.time()
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
        flushed = self._flushed = self._loop.create_future()
        self._wakeup()
        await flushed
        if self.error is not None:
            raise self.error

    def _arm(self, deadline: float, now: float) -> None:
        if deadline <= now:
            self._wakeup()
        else:
            self._timer = self._loop.call_at(deadline, self._expire)

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
                self._kick = self._loop.call_soon(self._start)
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
            self._task = self._loop.create_task(self._run())

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
        self._batch_at = self._loop.time() if self._pending else None
        return parts

    async def _run(self) -> None:
        while True:
            if not self._wanted:
                wake = self._wake = self._loop.create_future()
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
