"""Options shared by ``defer()`` and ``DeferredWriter``: retry policy, errors, the item envelope."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, replace
from typing import Any, Generic, NamedTuple, TypeVar

from .._redact import redact_url

T = TypeVar("T")


def env_int(name: str, default: int) -> int:
    """The integer in environment variable ``name``, or ``default`` when it is unset or empty."""
    raw = os.environ.get(name, "")
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} must be an integer (default {default})") from None


class DeferredError(Exception):
    """Base class of the errors raised by streamboost's deferred writes."""


class QueueFull(DeferredError):
    """Raised by ``put()``/``defer()`` when the queue is full and waiting is not allowed."""


class WriterClosed(DeferredError):
    """Raised by ``put()`` on a writer that is not started or is closing."""


class Entry(NamedTuple, Generic[T]):
    """One accepted item as the sink sees it.

    ``key`` is unique per ``put()`` and stable across redeliveries, so a sink can upsert on it
    (``INSERT ... ON CONFLICT (key) DO NOTHING``) and turn at-least-once into exactly-once.
    ``accepted_at`` is the wall-clock time ``put()`` accepted the item (Unix seconds).
    """

    key: str
    item: T
    accepted_at: float


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter.

    Retry ``n`` (0-based) waits ``uniform(0, min(max_backoff, backoff * 2**n))`` seconds.

    ``retries`` is the number of attempts after the first one; ``retries=0`` never retries.
    """

    retries: int = 5
    backoff: float = 0.1
    max_backoff: float = 10.0
    jitter: bool = True

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise ValueError(f"retries={self.retries!r} must be >= 0 (default 5)")
        if self.backoff <= 0:
            raise ValueError(f"backoff={self.backoff!r} must be > 0 seconds (default 0.1)")
        if self.max_backoff < self.backoff:
            raise ValueError(
                f"max_backoff={self.max_backoff!r} must be >= backoff={self.backoff!r} seconds"
            )

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based)."""
        ceiling = min(self.max_backoff, self.backoff * (2.0 ** min(attempt, 62)))
        return random.uniform(0.0, ceiling) if self.jitter else ceiling

    @classmethod
    def coerce(cls, value: int | RetryPolicy) -> RetryPolicy:
        if isinstance(value, RetryPolicy):
            return value
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"retries={value!r}: pass an int >= 0 or a RetryPolicy")
        return cls(retries=value)


@dataclass(frozen=True, slots=True)
class DeferConfig:
    """How ``defer()`` runs work: concurrency bound, queue bound and retry policy."""

    max_concurrency: int = 64
    max_pending: int = 100_000
    retry: RetryPolicy = RetryPolicy(retries=3)

    @classmethod
    def from_env(cls) -> DeferConfig:
        """``STREAMBOOST_DEFER_MAX_CONCURRENCY``, ``..._MAX_PENDING``, ``..._RETRIES``."""
        base = cls()
        return cls(
            max_concurrency=env_int("STREAMBOOST_DEFER_MAX_CONCURRENCY", base.max_concurrency),
            max_pending=env_int("STREAMBOOST_DEFER_MAX_PENDING", base.max_pending),
            retry=replace(
                base.retry, retries=env_int("STREAMBOOST_DEFER_RETRIES", base.retry.retries)
            ),
        )

    def __post_init__(self) -> None:
        if self.max_concurrency < 1:
            raise ValueError(f"max_concurrency={self.max_concurrency!r} must be >= 1 (default 64)")
        if self.max_pending < 1:
            raise ValueError(f"max_pending={self.max_pending!r} must be >= 1 (default 100000)")


def check_writer_options(
    sink: Any,
    *,
    name: str,
    max_batch: int,
    max_delay: float,
    max_queue: int,
    claim_idle: float,
    drain_timeout: float,
    put_timeout: float,
    durable: str | None,
) -> None:
    """``DeferredWriter``'s options, refused with the value and the fix."""
    if not callable(sink):
        raise TypeError(f"sink={sink!r} must be callable: async def sink(entries): ...")
    if not name or not name.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"name={name!r} must be a non-empty [A-Za-z0-9_-] string")
    if max_batch < 1:
        raise ValueError(f"max_batch={max_batch!r} must be >= 1 (default 500)")
    if max_delay <= 0:
        raise ValueError(f"max_delay={max_delay!r} must be > 0 seconds (default 0.2)")
    if max_queue < max_batch:
        raise ValueError(f"max_queue={max_queue!r} must be >= max_batch={max_batch!r}")
    if claim_idle <= 0:
        raise ValueError(f"claim_idle={claim_idle!r} must be > 0 seconds (default 60.0)")
    if drain_timeout <= 0:
        raise ValueError(f"drain_timeout={drain_timeout!r} must be > 0 seconds (default 30)")
    if not put_timeout > 0:
        raise ValueError(f"put_timeout={put_timeout!r} must be > 0 seconds (default 2.0)")
    if durable is not None and not durable.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(
            f"durable={redact_url(durable)!r} must be None or a redis://, rediss:// or unix:// URL"
        )
