"""The batching rules: when a chunk buffers, goes out at once, or asks for a flush.

``CoalescerCore`` knows bytes and event boundaries, nothing of ASGI: the sender offers it
chunks (with how much of each ends at an event boundary) and a subclass puts joined parts on
the wire (``put``, ``put_raw``): the HTTP sender ``_senders.Coalesced`` (so an open stream is
one object), or ``Coalescer`` over given ``write``/``raw`` coroutines (WebSocket batching).
Its buffer is ``BatchBase`` (the kernel's, whose ``add`` is the flush trigger and the
backpressure threshold for whole events); the flusher task, the window timer and the waits
are ``_flusher.Flusher``'s, made at the first batch that needs one (a sparse stream never
does); every write, bounded by ``send_timeout``, is ``_writes.BoundedWrites.write``.

- A chunk that ends an event is written at once, by the caller, while ``eager`` is set (until
  the first token has gone out), after a window idle, or unless its gap and the gap before
  were both under half a window (``quiet_gap``): a slower feed gives a batch no company, and
  one short gap is jitter (a late loop step, then an on-time one), not a burst (``near``: the
  last gap was short). A gap is between events: from the last chunk that ended one; a chunk
  that ends none (a relay's read cut inside an event) is no observation. Also while the
  loop's timers fire over a quarter window late (``_lag``).
- Otherwise chunks buffer. A batch is written when ``window`` seconds have passed since its
  first byte was buffered, when it holds ``max_events`` events or ``max_bytes`` bytes, or at
  once (with everything before it) when a critical event arrives; at the next turn when a
  whole event joins it past ``due`` (a loaded loop's timer is late; the app sends again).
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

from .._config import CoalesceConfig
from ._flusher import Closable, Flusher
from ._kernel import BatchBase
from ._lag import LoopLag
from ._ready import Ready, loop_clock
from ._table import FULL, WAKE, WRITE_NOW
from ._writes import BoundedWrites

Write = Callable[[list[bytes], int, bool], Awaitable[None]]
"""``write(parts, content_events, more_body)``: put the joined parts on the wire."""
Raw = Callable[[bytes, bool], Awaitable[None]]
"""``raw(data, more_body)``: put bytes on the wire that are no part of the app's stream (a
keepalive, the stall event): never counted in the record."""

_NEVER: Final = float("-inf")  # one float for every stream's "not yet"
_INF: Final = float("inf")  # one float for every stream's "nothing buffered"


class CoalescerCore(BatchBase, BoundedWrites):
    """Batches one stream's chunks into few writes; see the module docstring for the rules.

    A subclass defines ``put`` and ``put_raw``; ``BoundedWrites`` bounds them.
    """

    # And BatchBase's (C when built: _kernel, the fields in _table.BATCH_FIELDS). Few slots
    # on purpose: open streams are many (issue 13: at most 2 KiB each).
    __slots__ = ("_config", "_now", "done", "flusher", "health")

    def __init__(self, config: CoalesceConfig, *, eager: bool = True) -> None:
        self.max_events = config.max_events
        self.max_bytes = config.max_bytes
        self.max_buffer = config.max_buffer_bytes
        self.loop = loop = asyncio.get_running_loop()
        self.loop_clock = loop_clock(loop)
        self.done = Ready.of(loop)  # what a buffered chunk's send returns
        self.eager = eager
        self.error: BaseException | None = None
        self.ready = None  # no list until a batch waits (the kernel's add makes one)
        self.ready_bytes = self.ready_events = self.ready_content = 0
        self.pending_bytes = 0
        self.inflight = 0
        self.wanted = False
        # An unfinished event's start; None, not an empty list (56 bytes, on many streams).
        self.partial = None
        self._config = config  # send_timeout: shared, not copied
        self.window, self.quiet_gap = config.window, config.window / 2
        self.lag = LoopLag.of(loop, config.window)
        # The kernel's sender writes a one-event chunk the rule sends at once itself when its
        # owner allows it (``Coalesced``: no send_timeout to bound it, no health timer).
        self.write_now = False
        self.due = _INF  # loop time the oldest buffered byte must be written by
        # The last chunk decided that ended an event: its loop time, whether its gap was short.
        self.last_event, self.near = _NEVER, False
        # What the caller writes itself after WRITE_NOW (its content events wait in
        # ready_content, which is 0 then: nothing is buffered or in flight).
        self._now: list[bytes] | None = None
        self.last_write = _NEVER  # loop time of the last write
        self.flusher: Flusher | None = None  # made when a batch first needs one
        self.health: Closable | None = None  # the stream's keepalive/stall timer (_health)

    def put(self, parts: list[bytes], content: int, more: bool) -> Awaitable[None]:
        """Put the joined parts on the wire (counted)."""
        raise NotImplementedError

    def put_raw(self, data: bytes, more: bool) -> Awaitable[None] | None:
        """Put bytes that are no part of the app's stream on the wire; None: cannot."""
        raise NotImplementedError

    def the_flusher(self) -> Flusher:
        """The stream's flusher, made now if no batch needed one yet."""
        flusher = self.flusher
        if flusher is None:
            flusher = self.flusher = Flusher(self)
        return flusher

    def arm_timer(self, now: float) -> None:
        """A batch's first events wait: its timer starts (the kernel's, as ``offer`` does)."""
        self.the_flusher().arm(self.due, now)

    def wake(self, late: bool = False) -> None:
        """A flush is due (the kernel calls this on ``WAKE``; ``late``: the batch's time has
        passed, so the flusher starts now and its first turn takes what this turn adds)."""
        if late:
            self.lag.saw(self.due, self.loop)  # the timer meant for ``due`` has not fired
        self.the_flusher().wake(defer_start=not late)

    def room(self) -> Awaitable[None]:
        """What the app's send returns on a full buffer (the kernel calls this on ``FULL``)."""
        return self.the_flusher().wait_for_room()

    def offer(self, data: bytes, complete: int, events: int, content: int, critical: bool) -> int:
        """Take one chunk whose first ``complete`` bytes end at an event boundary.

        Returns 0 (buffered) or bits of ``WRITE_NOW``, ``WAKE``, ``FULL``: then the caller
        returns ``settle(code)`` to the app.
        """
        if self.ready and complete == len(data) and not self.pending_bytes:
            code = self.add(data, complete, events, content, critical)  # joins a batch
            if not code and not self.wanted and self.loop_clock() >= self.due:
                self.wake(True)  # due already: the timer is late (a loaded loop)
            return code
        now = self.loop_clock()
        if complete:  # a piece that ends no event (a relay's cut read) is no gap observation
            short = now - self.last_event < self.quiet_gap  # one short gap: jitter; two: a burst
            quiet = not (short and self.near)
            self.last_event, self.near = now, short or self.eager
            if (
                not self.ready
                and not self.inflight
                and (self.eager or quiet or now - self.last_write >= self.window or self.lag.late)
            ):
                self._now = self._complete(data, complete)
                self.ready_content += content
                self.due = now + self.window if self.partial is not None else _INF
                return WRITE_NOW
        if self.due == _INF:
            self.due = now + self.window
        if not complete:
            if self.partial is None:
                self.partial = [data]
            else:
                self.partial.append(data)
            self.pending_bytes += len(data)
            full = self.ready_bytes + self.pending_bytes + self.inflight >= self.max_buffer
            return FULL if full else 0
        was_empty = not self.ready
        size = self.pending_bytes + complete
        parts = self._complete(data, complete)
        last = parts.pop()
        if parts:
            if self.ready is None:
                self.ready = parts
            else:
                self.ready.extend(parts)
        code = self.add(last, size, events, content, critical)
        if was_empty and not code & WAKE:
            self.arm_timer(now)
        return code

    def _complete(self, data: bytes, complete: int) -> list[bytes]:
        """Take the unfinished event's start plus ``data[:complete]``; keep the rest pending."""
        head = data if complete == len(data) else data[:complete]
        partial = self.partial
        if partial is None:
            parts = [head]
        else:
            partial.append(head)
            parts = partial
        self.partial = [data[complete:]] if complete < len(data) else None
        self.pending_bytes = len(data) - complete
        return parts

    def settle(self, code: int) -> Awaitable[None]:
        """What the app's send returns after ``offer`` said ``code``."""
        if code & WRITE_NOW:  # the write's own coroutine: no layer of ours around it
            parts = self._now
            self._now = None
            assert parts is not None
            # Stamped with offer's loop time (this same turn): one float for both stamps.
            return self.write(parts, self.take_content(), True, self.last_event)
        if code & WAKE:
            self.wake()
        if code & FULL:
            return self.room()
        return self.done

    def take(self, *, everything: bool) -> list[bytes]:
        """The ready events (and with ``everything`` an unfinished one) for one write."""
        parts = self.ready
        if parts is None:
            parts = []
        self.ready = None
        self.ready_bytes = self.ready_events = 0
        if everything and self.partial is not None:
            parts.extend(self.partial)
            self.partial = None
            self.pending_bytes = 0
        self.due = self.loop_clock() + self.window if self.partial is not None else _INF
        return parts

    def take_content(self) -> int:
        """The content events of what ``take`` took (and of writes asked for since)."""
        content = self.ready_content
        self.ready_content = 0
        return content

    def append_final(self, data: bytes) -> None:
        """``data`` and any unfinished event join the ready events (the body's last write)."""
        ready = self.ready
        if ready is None:
            ready = self.ready = []
        if self.partial is not None:
            ready.extend(self.partial)
        ready.append(data)
        self.partial = None
        self.pending_bytes = 0

    def quiet(self) -> bool:
        """Nothing buffered, no unfinished event, no write in flight: a keepalive may go."""
        return not self.ready and self.partial is None and not self.inflight

    def finish(self, data: bytes, content: int) -> Awaitable[None]:
        """Write everything buffered plus ``data`` as the body's last write."""
        return self._flush_all(data, content, True)

    def drain(self) -> Awaitable[None]:
        """Write everything buffered now (before a message that must not overtake it)."""
        return self._flush_all(b"", 0, False)

    def _flush_all(self, data: bytes, content: int, final: bool) -> Awaitable[None]:
        flusher = self.flusher
        if flusher is None:
            if not self.inflight:
                return self._write_all(data, content, final)  # no task, no timer to mind
            flusher = self.flusher = Flusher(self)
        return flusher.flush_all(data, content, final=final)

    async def _write_all(self, data: bytes, content: int, final: bool) -> None:
        """``Flusher.flush_all`` of a stream that never needed a flusher: write here."""
        if self.error is not None:
            raise self.error
        parts = self.take(everything=True)
        self.wanted = False
        if data:
            parts.append(data)
        content += self.take_content()
        if parts or final:
            await self.write(parts, content, not final)

    def close(self, error: BaseException | None = None) -> None:
        """Stop: cancel the timer and the flusher, drop what is buffered. Idempotent.

        A send waiting on this stream then raises ``error`` (if given).
        """
        if error is not None and self.error is None:
            self.error = error
        self.ready = None
        self.partial = None
        self.ready_bytes = self.pending_bytes = self.inflight = 0
        health = self.health
        if health is not None:
            self.health = None
            health.close()
        if self.flusher is not None:
            self.flusher.close()


class Coalescer(CoalescerCore):
    """A ``CoalescerCore`` writing through the coroutines it is given (WebSocket batching)."""

    __slots__ = ("_raw", "_write")

    def __init__(
        self, write: Write, config: CoalesceConfig, *, eager: bool = True, raw: Raw | None = None
    ) -> None:
        super().__init__(config, eager=eager)
        self._write = write
        self._raw = raw

    def put(self, parts: list[bytes], content: int, more: bool) -> Awaitable[None]:
        return self._write(parts, content, more)

    def put_raw(self, data: bytes, more: bool) -> Awaitable[None] | None:
        return None if self._raw is None else self._raw(data, more)
