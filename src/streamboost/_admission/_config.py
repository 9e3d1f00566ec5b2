"""``AdmissionConfig`` and ``SharedLimit``: how many streams run at once, and who waits.

Both are frozen and validated on construction; every error names the value and the fix.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final, Literal

from .._redact import redact_url
from ._routes import RouteMatcher

DEFAULT_SHARED_KEY: Final = "streamboost:admission"


@dataclass(frozen=True, slots=True)
class SharedLimit:
    """A limit shared by every process using the same Redis ``url`` and ``key``.

    A Redis sorted set holds one member per running stream, scored by its lease's expiry;
    each process renews its leases every ``lease / 3`` seconds from one timer, so the
    streams of a process that died free their places within ``lease`` seconds.
    """

    url: str
    """``redis://`` or ``rediss://`` URL of the Redis holding the semaphore."""
    limit: int
    """Streams running at once across all processes sharing ``key``."""
    key: str = DEFAULT_SHARED_KEY
    """The sorted set's key; processes with the same key share one limit."""
    lease: float = 10.0
    """Seconds a place outlives its last renewal (how long a dead process's places stay)."""
    poll_interval: float = 0.05
    """Seconds between tries for a place while the shared limit is full."""
    timeout: float = 0.5
    """Seconds one Redis command may take (the client's socket timeouts)."""
    on_error: Literal["admit", "reject"] = "admit"
    """When Redis fails: ``"admit"`` under the local limits only, or ``"reject"`` (503)."""

    def __post_init__(self) -> None:
        if not isinstance(self.url, str) or not self.url.startswith(
            ("redis://", "rediss://", "unix://")
        ):
            shown = redact_url(self.url) if isinstance(self.url, str) else self.url
            raise ValueError(f"url={shown!r} must be a Redis URL, e.g. 'redis://127.0.0.1:6379/0'")
        if isinstance(self.limit, bool) or not isinstance(self.limit, int) or self.limit < 1:
            raise ValueError(f"limit={self.limit!r} must be an int >= 1, e.g. 64")
        if not isinstance(self.key, str) or not self.key:
            raise ValueError(
                f"key={self.key!r} must be a non-empty string (default {DEFAULT_SHARED_KEY!r})"
            )
        if not _positive(self.lease) or self.lease < 0.1:
            raise ValueError(f"lease={self.lease!r} must be >= 0.1 seconds (default 10.0)")
        if not _positive(self.poll_interval) or self.poll_interval > self.lease / 3:
            raise ValueError(
                f"poll_interval={self.poll_interval!r} must be > 0 and <= lease / 3 "
                f"({self.lease / 3:g} s) (default 0.05)"
            )
        if not _positive(self.timeout) or self.timeout >= self.lease / 3:
            raise ValueError(
                f"timeout={self.timeout!r} must be > 0 and < lease / 3 ({self.lease / 3:g} s), "
                "so a slow renewal cannot outlive the lease (default 0.5)"
            )
        if self.on_error not in ("admit", "reject"):
            raise ValueError(f"on_error={self.on_error!r} must be 'admit' or 'reject'")

    def __repr__(self) -> str:
        return (
            f"SharedLimit(url={redact_url(self.url)!r}, limit={self.limit!r}, key={self.key!r}, "
            f"lease={self.lease!r}, poll_interval={self.poll_interval!r}, "
            f"timeout={self.timeout!r}, on_error={self.on_error!r})"
        )


@dataclass(frozen=True, slots=True)
class AdmissionConfig:
    """Admission control: at most ``limit`` requests run the app at once in this process.

    A request past a limit waits in a bounded queue (``max_queue``, ``max_wait`` seconds,
    ordered by ``priority``); past that it gets ``status`` with ``Retry-After`` before the
    app runs. The time waited is the request's phase ``queue``.
    """

    limit: int
    """Requests running the app at once in this process."""
    route_limits: Mapping[str, int] | None = None
    """Per route template (``/v1/chat/{model}``, ``{rest:path}`` for the rest): its own limit."""
    max_queue: int = 100
    """Requests that may wait for a place; 0 rejects at once when full."""
    max_wait: float = 10.0
    """Seconds a request may wait before it is rejected."""
    priority: Callable[[dict[str, Any]], float] | None = None
    """``(scope) -> number``: larger leave the queue first; a full queue drops its lowest."""
    exempt: Callable[[dict[str, Any]], bool] | None = None
    """``(scope) -> bool``: True for requests that skip admission (health checks)."""
    status: int = 429
    """The rejection's status: 429 or 503."""
    retry_after: int = 1
    """Seconds sent in the rejection's ``Retry-After`` header."""
    shared: SharedLimit | None = None
    """A limit across processes and machines through Redis (None: this process only)."""

    def __post_init__(self) -> None:
        if isinstance(self.limit, bool) or not isinstance(self.limit, int) or self.limit < 1:
            raise ValueError(f"limit={self.limit!r} must be an int >= 1, e.g. 32")
        if self.route_limits is None:
            object.__setattr__(self, "route_limits", MappingProxyType({}))
        if not isinstance(self.route_limits, Mapping):
            raise TypeError(
                f"route_limits={self.route_limits!r} must be a mapping of route template to "
                "limit, e.g. {'/v1/chat/completions': 8}"
            )
        for template, limit in self.route_limits.items():
            if not isinstance(template, str) or not template.startswith("/"):
                raise ValueError(
                    f"route_limits key {template!r} must be a route template starting with "
                    "'/', e.g. '/v1/chat/{model}'"
                )
            if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
                raise ValueError(f"route_limits[{template!r}]={limit!r} must be an int >= 1")
        if isinstance(self.max_queue, bool) or not isinstance(self.max_queue, int):
            raise ValueError(f"max_queue={self.max_queue!r} must be an int >= 0 (default 100)")
        if self.max_queue < 0:
            raise ValueError(f"max_queue={self.max_queue!r} must be >= 0 (default 100)")
        if not _positive(self.max_wait):
            raise ValueError(f"max_wait={self.max_wait!r} must be > 0 seconds (default 10.0)")
        for name in ("priority", "exempt"):
            value = getattr(self, name)
            if value is not None and not callable(value):
                raise TypeError(f"{name}={value!r} must be a function of the scope, or None")
        if self.status not in (429, 503):
            raise ValueError(f"status={self.status!r} must be 429 or 503 (default 429)")
        if (
            isinstance(self.retry_after, bool)
            or not isinstance(self.retry_after, int)
            or self.retry_after < 0
        ):
            raise ValueError(
                f"retry_after={self.retry_after!r} must be whole seconds >= 0 (default 1)"
            )
        if self.shared is not None and not isinstance(self.shared, SharedLimit):
            raise TypeError(f"shared={self.shared!r} must be a SharedLimit(...) or None")
        RouteMatcher(self.route_limits)  # a template it cannot compile fails here, by name
        object.__setattr__(self, "route_limits", MappingProxyType(dict(self.route_limits)))


def _positive(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )
