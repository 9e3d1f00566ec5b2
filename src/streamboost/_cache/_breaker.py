"""A small circuit breaker: after repeated backend failures, skip the backend for a while."""

from __future__ import annotations

import time


class CircuitBreaker:
    """Closed until ``threshold`` failures in a row; then open for ``recovery`` seconds.

    When the recovery time has passed, one call is let through as a probe (half-open): success
    closes the breaker, failure opens it again for another ``recovery`` seconds.
    """

    __slots__ = ("_failures", "_open_until", "_probing", "opened", "recovery", "threshold")

    def __init__(self, *, threshold: int, recovery: float) -> None:
        self.threshold = threshold
        self.recovery = recovery
        self._failures = 0
        self._open_until = 0.0
        self._probing = False
        self.opened = 0  # how many times it opened: exported as a stat

    @property
    def state(self) -> str:
        if self._failures < self.threshold:
            return "closed"
        return "half-open" if time.monotonic() >= self._open_until else "open"

    def allow(self) -> bool:
        if self._failures < self.threshold:
            return True
        if self._probing or time.monotonic() < self._open_until:
            return False
        self._probing = True
        return True

    def success(self) -> None:
        self._failures = 0
        self._probing = False

    def abandon(self) -> None:
        """The call was cancelled before it could tell: let the next call probe."""
        self._probing = False

    def failure(self) -> None:
        self._failures += 1
        self._probing = False
        if self._failures >= self.threshold:
            if self._failures == self.threshold or self._open_until <= time.monotonic():
                self.opened += 1
            self._open_until = time.monotonic() + self.recovery
