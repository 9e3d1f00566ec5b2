"""The fast-path kernel: the rules a body chunk meets, in Python, with a C twin.

Only this module has a C twin (``_speedups``), the way prometheus_client swaps only its value
storage: four small base classes and the functions on them that a body
chunk runs.

- ``ScanBase.classify(body)``: is the chunk whole events, none critical, and how many of them
  carry output tokens; ``GENERAL`` when not sure (the scanner's general path then decides), and for
  an event carrying token usage, coalesced or not (the scanner reads it, ``_usage``);
- ``BatchBase.add(...)``: join whole events to a waiting batch: the flush trigger and the
  backpressure threshold, written here once;
- ``RecordBase.took/produced/sent/wrote``: every per-chunk change to a ``StreamRecord``
  (``produced``: when the app sent a body message, and the gaps between its content events);
- ``Sender.send``: the app's send; after ``use(mode)`` at the response start it takes a chunk
  the kernel is sure of itself and hands every other message to ``general``, the Python
  sender's own method.

The general paths (``EventScanner``, ``Coalescer``, the senders) call these same functions.
The C versions are used when built (``NATIVE``), unless ``STREAMBOOST_NO_EXTENSIONS=1``;
``tests/test_kernel.py`` runs both on the same inputs.
"""

from __future__ import annotations

import os
from bisect import bisect_left
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any

from ._pyscan import PyScanBase as PyScanBase
from ._pysender import PySender as PySender
from ._receiving import receiving
from ._table import (
    BATCH_FIELDS,
    BUFFERED,
    FULL,
    GAP_BOUNDS,
    RECORD_ARRAYS,
    RECORD_FIELDS,
    WAKE,
)

_NEVER = float("-inf")


class PyRecordBase:
    """``StreamRecord``'s per-chunk counters and times, and the changes a chunk makes."""

    __slots__ = (*RECORD_FIELDS, *RECORD_ARRAYS)

    chunks_in: int
    events: int
    content_events: int
    writes: int
    bytes_out: int
    first_byte_at: float | None
    first_token_at: float | None
    last_body_at: float | None
    last_token_at: float | None
    app_at: float  # the app's last body message (clock reading)
    gap_at: float  # the app's last content event; -inf before the first
    gap_max: float  # the largest gap between two content events the app sent
    gap_sum: float  # the gaps added up (last content event - first)
    gap_counts: list[int]  # gaps per GAP_BOUNDS bucket, not cumulative; the last is +Inf

    def __init__(self) -> None:
        self.gap_counts = [0] * (len(GAP_BOUNDS) + 1)

    def took(self, events: int) -> None:
        """A body chunk completing ``events`` events was buffered."""
        self.chunks_in += 1
        self.events += events

    def wrote(self, size: int, content: int, now: float) -> None:
        """One body message of ``size`` bytes with ``content`` content events went out."""
        if size:
            self.bytes_out += size
            if self.first_byte_at is None:
                self.first_byte_at = now
        if content:
            self.content_events += content
            if self.first_token_at is None:
                self.first_token_at = now
            self.last_token_at = now
        self.writes += 1
        self.last_body_at = now

    def produced(self, content: int, now: float) -> None:
        """The app sent a body message at ``now`` completing ``content`` content events: the
        gaps between content events as the app made them (several in one message: 0 s)."""
        self.app_at = now
        if content:
            last = self.gap_at
            self.gap_at = now
            if last != _NEVER:
                gap = now - last
                self.gap_counts[bisect_left(GAP_BOUNDS, gap)] += 1
                self.gap_sum += gap
                if gap > self.gap_max:
                    self.gap_max = gap
            if content > 1:
                self.gap_counts[0] += content - 1

    def sent(self, size: int, events: int, content: int, now: float) -> None:
        """A body chunk went out as the app sent it (nothing coalesced)."""
        self.chunks_in += 1
        self.events += events
        self.produced(content, now)
        self.wrote(size, content, now)


class PyLagBase:
    """One per event loop and window (``_lag.LoopLag`` runs the probe that sets it)."""

    __slots__ = ("late",)

    late: bool  # the loop's timers fire more than a quarter window later than asked

    def __init__(self) -> None:
        self.late = False


class PyBatchBase:
    """``Coalescer``'s buffer, and the rule for whole events that join it."""

    __slots__ = BATCH_FIELDS

    ready: list[bytes] | None  # whole events, oldest first; None: no batch waiting
    ready_bytes: int
    ready_events: int
    ready_content: int
    pending_bytes: int  # the start of an unfinished event: its bytes
    partial: list[bytes] | None  # ... and its pieces (None: no event unfinished)
    inflight: int  # bytes of the write in flight
    max_events: int
    max_bytes: int
    max_buffer: int
    wanted: bool  # a flush has been asked for
    error: BaseException | None
    loop: Any  # the event loop
    loop_clock: Any  # its time(), as a plain callable (``_ready.loop_clock``): stamps the rules
    eager: bool  # every event goes out at once (until the first token is out)
    last_event: float  # loop time of the last chunk the rules decided that ended an event
    near: bool  # ... which came within quiet_gap of the one before it that did (short gap)
    last_write: float  # loop time of the last write
    quiet_gap: float  # an event this long after the previous one goes out at once
    window: float  # an event this long after the last write goes out at once
    due: float  # loop time the waiting batch is due by (+inf: nothing buffered)
    write_now: bool  # the sender may write such an event itself (no timeout, no health)
    lag: Any  # the loop's ``_lag.LoopLag`` (shared); while ``late``, every event goes at once

    # The sender calls a subclass's ``wake()`` (a flush is due) and ``room()`` (the awaitable
    # the app's send returns on a full buffer) by name: no bound methods stored per stream.
    def wake(self) -> None:
        raise NotImplementedError

    def room(self) -> Awaitable[None]:
        raise NotImplementedError

    def add(self, body: bytes, size: int, events: int, content: int, critical: bool) -> int:
        """Append whole events (``size`` bytes of them end in ``body``); say what is due:
        ``WAKE`` when the batch must be written now, ``FULL`` when the app must wait."""
        ready = self.ready
        if ready is None:  # no batch waiting holds no list (open streams are many)
            self.ready = [body]
        elif type(ready) is not list:
            raise TypeError("the batch's ready is not a list or None")
        else:
            ready.append(body)
        self.ready_bytes += size
        self.ready_events += events
        self.ready_content += content
        code = BUFFERED
        if not self.wanted and (
            critical or self.ready_events >= self.max_events or self.ready_bytes >= self.max_bytes
        ):
            code = WAKE
        if self.ready_bytes + self.pending_bytes + self.inflight >= self.max_buffer:
            code |= FULL
        return code


if TYPE_CHECKING:
    NATIVE: bool
    RecordBase = PyRecordBase
    ScanBase = PyScanBase
    BatchBase = PyBatchBase
    LagBase = PyLagBase
    Sender = PySender
    # The Prometheus fast backend's end of a response in C (``_fast_backend``), or None.
    tally_layout: Callable[[type, type, type, type, type], None] | None
    tally_end: Callable[[Any, Any, float, str | None], None] | None
    Receiving = receiving
else:
    try:
        if os.environ.get("STREAMBOOST_NO_EXTENSIONS", "") not in ("", "0"):
            raise ImportError("STREAMBOOST_NO_EXTENSIONS is set")
        from ._speedups import (
            BatchBase,
            LagBase,
            Receiving,
            RecordBase,
            ScanBase,
            Sender,
            tally_end,
            tally_layout,
        )
    except ImportError:
        RecordBase, ScanBase, BatchBase, Sender = PyRecordBase, PyScanBase, PyBatchBase, PySender
        LagBase = PyLagBase
        tally_layout = tally_end = None
        Receiving = receiving
        NATIVE = False
    else:
        Coroutine.register(Receiving)  # as the coroutine it replaces: create_task() takes it
        NATIVE = True
