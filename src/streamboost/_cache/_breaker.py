"""A small circuit breaker: after repeated backend failures, skip the backend for a while.

``call()`` is how the cache fails open: a Redis error or timeout becomes ``FAILED`` and the
caller runs the loader instead.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

logger = logging.getLogger("streamboost.cache")
T = TypeVar("T")


class Failed:
    """The backend was skipped (breaker open) or failed: the caller falls back."""


FAILED = Failed()


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

    async def call(
        self,
        op: Callable[..., Awaitable[T]],
        *args: Any,
        errors: tuple[type[BaseException], ...],
        name: str,
    ) -> T | Failed:
        """``await op(*args)`` unless open; ``FAILED`` instead of raising one of ``errors``.

        Cancellation is not a backend failure: it propagates and lets the next call probe.
        """
        if not self.allow():
            return FAILED
        try:
            result = await op(*args)  # bounded by the client's socket timeouts
        except errors as exc:
            opened = self.opened
            self.failure()
            if self.opened != opened:  # logged once per opening, not once per call
                logger.warning(
                    "cache %s: Redis failing (%r); skipping it for %.1fs", name, exc, self.recovery
                )
            return FAILED
        except BaseException:
            self.abandon()
            raise
        self.success()
        return result
