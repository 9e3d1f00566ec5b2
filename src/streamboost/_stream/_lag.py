"""Whether the event loop lags: the coalescer's rule for a saturated loop (issue 13.3).

A batch is written a window after its first byte by a timer, and by the flusher task that
timer or the app's next send starts; on a saturated loop each of those waits a whole loop
turn, which there lasts hundreds of milliseconds, while an event written when the app emits
it (the server's own behaviour) waits for nothing. So while the loop's timers fire more than
a quarter window later than asked, every whole event is written at once (the write-at-once
rule's fourth case, read from ``late``, a C char on the kernel's path) and nothing is
buffered: a saturated loop costs what it costs without StreamBoost, not a loop turn more.

One ``LoopLag`` per event loop and window, shared by its streams. A stream's late timer (the
flusher's ``_expire``) or a send that finds its batch due past its time tells it (``saw``);
then ``late`` is set and one probe timer a window ahead measures the loop: late by more than
a quarter window, or on time fewer than ``ON_TIME`` times in a row, it is armed again; else
``late`` is cleared and batching resumes. One timer per loop per window while late, none
otherwise: no per-chunk cost but the char read.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import ClassVar

from ._kernel import LagBase
from ._ready import loop_clock

ON_TIME = 8  # probes in a row on time (8 windows: 0.4 s by default) before batching resumes


class LoopLag(LagBase):
    """``late`` while this loop's timers fire more than ``limit`` (a quarter window) late."""

    __slots__ = ("_clock", "_on_time", "_probing", "limit", "window")

    _by_loop: ClassVar[
        weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[float, LoopLag]]
    ] = weakref.WeakKeyDictionary()

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop, window: float) -> LoopLag:
        """The loop's one ``LoopLag`` for ``window`` (made at its first stream)."""
        lags = cls._by_loop.get(loop)
        if lags is None:
            lags = cls._by_loop[loop] = {}
        lag = lags.get(window)
        if lag is None:
            lag = lags[window] = cls(loop_clock(loop), window)
        return lag

    def __init__(self, clock: Callable[[], float], window: float) -> None:
        super().__init__()
        self.late = False
        self.window = window
        # Late past a quarter window: a batch there waits its window, the timer's lateness and
        # the flusher task's turn (about as long), so a window more than the rule allows for;
        # a whole window (first tried) let p99 reach 161 ms at bench_scale's onset (1000
        # streams, bare's 4.8 ms), while an on-time loop's timers are late by ~1 ms.
        self.limit = window / 4
        self._clock = clock
        # No handle kept: the loop holds the probe's timer, and nothing here holds the loop.
        self._probing = False
        self._on_time = 0  # probes in a row that fired on time

    def saw(self, asked: float, loop: asyncio.AbstractEventLoop) -> None:
        """Something asked to run at loop time ``asked`` runs now: past ``limit`` late, the
        loop lags (and the probe starts, unless it runs already)."""
        if not self._probing and self._clock() - asked > self.limit:
            self.late = self._probing = True
            self._arm(loop)

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        asked = self._clock() + self.window
        loop.call_at(asked, self._check, asked, loop)

    def _check(self, asked: float, loop: asyncio.AbstractEventLoop) -> None:
        # A loaded loop's turns vary, so one probe on time says little: clearing on it let
        # batching resume between late samples: at 750 streams (bench_scale, CPU 0.94) the
        # p99 lateness was 122 ms against bare's 16 ms; with 8 in a row, 19 and 16 ms.
        self._on_time = 0 if self._clock() - asked > self.limit else self._on_time + 1
        if self._on_time < ON_TIME:
            self._arm(loop)  # still lagging, or not on time for long enough
        else:
            self.late = self._probing = False  # on time again: batching resumes
            self._on_time = 0
