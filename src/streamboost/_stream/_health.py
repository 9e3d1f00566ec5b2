"""Stream health on a coalesced response: keepalive pings and the stall timeout.

``Health`` is one ``TimerHandle`` per stream (besides the flusher's window timer), armed at the
response start and re-armed only when it fires, so a chunk pays nothing for it: the coalescer
already keeps the loop time of its last write (``last_write``) and the record the clock
reading of the app's last body message (``app_at``, set by ``RecordBase.produced``). When it
fires it looks at those two:

- keepalive: after ``keepalive`` seconds without a write to the client (from the response
  start, so before the first token too) it asks the flusher's own task to write the ping
  (``Flusher.ping``; no task of its own), only while nothing is buffered, unfinished or in
  flight, so a ping never lands inside an event. Pings go out through the coalescer's ``raw``
  write and are never counted: not an event, a write, a byte, a first byte or a token.
- stall: after ``stall_timeout`` seconds without a body message from the app (and no write in
  flight, which would be the client's slowness, bounded by ``send_timeout``), ``on_stall``
  runs: the response marks the record ``stalled``, cancels the app and writes the stall event.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Final

from .._config import CoalesceConfig
from ._coalescer import CoalescerCore
from ._record import Clock, StreamRecord
from ._table import FORMAT_LINES, FORMAT_SSE

SSE_PING: Final = b": ping\n\n"
_INF: Final = float("inf")


class Health:
    """One stream's keepalive and stall timer (see the module docstring)."""

    __slots__ = (
        "_clock",
        "_coalescer",
        "_keepalive",
        "_loop",
        "_on_stall",
        "_ping",
        "_record",
        "_stall",
        "_started",
        "_timer",
        "pinged_at",
    )

    def __init__(
        self,
        coalescer: CoalescerCore,
        record: StreamRecord,
        clock: Clock,
        config: CoalesceConfig,
        fmt: int,
        stallable: bool,
        on_stall: Callable[[], None],
    ) -> None:
        """``fmt``: the body's stream format (its ping); ``stallable``: the app's task can be
        cancelled, so ``config.stall_timeout`` applies."""
        self._coalescer = coalescer
        self._record = record
        self._clock = clock
        ping = {FORMAT_SSE: SSE_PING, FORMAT_LINES: config.keepalive_ndjson}.get(fmt)
        self._keepalive = config.keepalive if ping is not None else None
        self._ping = ping
        self._stall = stall = config.stall_timeout if stallable else None
        self._on_stall = on_stall
        self._loop = loop = coalescer.loop
        self._started = now = loop.time()
        self.pinged_at = -_INF  # loop time of the last ping asked for
        coalescer.health = self  # closed with the coalescer
        first = min(self._keepalive or _INF, stall or _INF)
        self._timer: asyncio.TimerHandle | None = (
            loop.call_at(now + first, self._fire) if first < _INF else None
        )

    def _fire(self) -> None:
        self._timer = None
        c = self._coalescer
        if c.error is not None:
            return  # the stream is over
        now = self._loop.time()
        due = _INF
        stall = self._stall
        if stall is not None:
            idle = self._clock() - self._record.app_at
            if idle >= stall and not c.inflight:
                self._on_stall()
                return
            due = now + max(stall - idle, 0.0) if idle < stall else now + stall
        keepalive = self._keepalive
        if keepalive is not None:
            at = max(c.last_write, self.pinged_at, self._started) + keepalive
            if at <= now:
                if c.quiet():
                    self.pinged_at = now
                    c.the_flusher().ping(self._ping)  # type: ignore[arg-type]
                at = now + keepalive  # (a write under way ends the silence itself)
            due = min(due, at)
        if due < _INF:
            self._timer = self._loop.call_at(due, self._fire)

    def close(self) -> None:
        timer = self._timer
        if timer is not None:
            self._timer = None
            timer.cancel()
