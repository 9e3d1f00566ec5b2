"""The batching rules: when a chunk buffers, goes out at once, or wakes the flusher.

``Coalescer`` knows bytes and event boundaries, nothing of ASGI: the owner feeds it chunks
(with how much of each chunk ends at an event boundary) and gives it a ``write`` coroutine
that puts joined parts on the wire. The buffer, the flusher task, the window timer and
backpressure are ``_flusher.BatchFlusher``, which ``Coalescer`` extends.

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

from collections.abc import Awaitable
from typing import Final

from ._flusher import BatchFlusher

BUFFERED: Final = 0
WRITE_NOW: Final = 1
FULL: Final = 2


class Coalescer(BatchFlusher):
    """Batches one stream's chunks into few writes; see the module docstring for the rules."""

    __slots__ = ()

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
        now = self.loop.time()
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
