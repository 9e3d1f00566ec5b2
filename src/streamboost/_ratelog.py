"""``RateLimitedLog``: a warning that can repeat on every request is logged once per interval.

The first occurrence of a key is logged at once; later ones within ``every`` seconds are only
counted (and logged at DEBUG), and the next one logged after the interval says how many were
left out. Messages start with ``streamboost`` and name their component, because servers such
as uvicorn do not configure the ``streamboost`` loggers: Python's last-resort handler prints
the bare message, without a logger name or a timestamp.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable
from typing import Any, Final

DEFAULT_EVERY: Final = 60.0
_MAX_KEYS: Final = 1024  # keys are code locations (phase names, channels), not request data


class RateLimitedLog:
    """``log.warning(key, "streamboost x: %s", arg)``: one line per key per ``every`` s."""

    __slots__ = ("_clock", "_state", "every", "logger")

    def __init__(
        self,
        logger: logging.Logger,
        *,
        every: float = DEFAULT_EVERY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.every = every
        self._clock = clock
        self._state: dict[Hashable, list[float]] = {}  # key -> [next time to log, left out]

    def log(self, level: int, key: Hashable, msg: str, *args: Any) -> bool:
        """Log ``msg % args`` at ``level`` unless ``key`` was logged less than ``every`` ago.

        Returns True when the line was logged.
        """
        now = self._clock()
        state = self._state.get(key)
        if state is not None and now < state[0]:
            state[1] += 1
            self.logger.debug(msg, *args)
            return False
        left_out = int(state[1]) if state is not None else 0
        if state is None and len(self._state) >= _MAX_KEYS:
            self._state.clear()
        self._state[key] = [now + self.every, 0]
        if left_out:
            msg += " (%d more like this in the last %.0f s)"
            args = (*args, left_out, self.every)
        self.logger.log(level, msg, *args)
        return True

    def warning(self, key: Hashable, msg: str, *args: Any) -> bool:
        return self.log(logging.WARNING, key, msg, *args)

    def forget(self, key: Hashable) -> int:
        """Start ``key`` afresh (its condition ended); returns how many were left out."""
        state = self._state.pop(key, None)
        return int(state[1]) if state is not None else 0
