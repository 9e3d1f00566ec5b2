"""``ResumeConfig``: resumable SSE streams (issue 17, part 2), frozen and validated."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .. import _checks
from .._redact import redact_url

DEFAULT_PREFIX = "streamboost:resume:"
DEFAULT_UNSTAMPED = ("ping", "heartbeat", "keepalive")


@dataclass(frozen=True, slots=True)
class ResumeConfig:
    """Resumable SSE responses: ids stamped on events, batches logged to Redis, resume by
    ``Last-Event-ID`` on any process sharing the Redis, generation detached from the client.
    """

    redis_url: str
    """``redis://`` or ``rediss://`` URL of the Redis holding the stream logs."""
    owner: Callable[[dict[str, Any]], str | None]
    """``(scope) -> str | None``: who owns a stream (e.g. the user id); None: not resumable."""
    paths: tuple[str, ...] = ("/",)
    """Path prefixes whose SSE responses are resumable."""
    detach_timeout: float = 30.0
    """Seconds the generation goes on after its client left (then the app sees a disconnect)."""
    ttl: float = 600.0
    """Seconds a stream's log stays after its last write."""
    maxlen: int = 10_000
    """Batches kept per stream (approximate trim; a resume from before them gets 404)."""
    tail_timeout: float = 60.0
    """Seconds a resumed response waits for the next batch before it ends."""
    timeout: float = 0.5
    """Seconds one Redis command may take (socket timeouts; the blocking read adds its block)."""
    key_prefix: str = DEFAULT_PREFIX
    """Prefix of the stream keys (``<prefix><owner digest>:<stream id>``)."""
    unstamped_events: tuple[str, ...] = DEFAULT_UNSTAMPED
    """SSE ``event:`` names that get no id and are not logged (pings); comments never are."""

    def __post_init__(self) -> None:
        url = self.redis_url
        if not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://")):
            shown = redact_url(url) if isinstance(url, str) else url
            raise ValueError(
                f"redis_url={shown!r} must be a Redis URL, e.g. 'redis://127.0.0.1:6379/0'"
            )
        if not callable(self.owner):
            raise TypeError(
                f"owner={self.owner!r} must be a function (scope) -> str | None, e.g. "
                "lambda scope: scope['state']['user_id']"
            )
        if isinstance(self.paths, str) or not all(
            isinstance(p, str) and p.startswith("/") for p in self.paths
        ):
            raise ValueError(
                f"paths={self.paths!r} must be a tuple of path prefixes, e.g. ('/chat',)"
            )
        object.__setattr__(self, "paths", tuple(self.paths))
        for name, default in (
            ("detach_timeout", 30.0),
            ("ttl", 600.0),
            ("tail_timeout", 60.0),
            ("timeout", 0.5),
        ):
            value = getattr(self, name)
            _checks.seconds(name, value, default=default)
            if value <= 0:
                raise ValueError(f"{name}={value!r} must be > 0 seconds (default {default!r})")
        _checks.count("maxlen", self.maxlen, default=10_000)
        if self.maxlen < 1:
            raise ValueError(f"maxlen={self.maxlen!r} must be >= 1 (default 10000)")
        if not isinstance(self.key_prefix, str) or not self.key_prefix:
            raise ValueError(
                f"key_prefix={self.key_prefix!r} must be a non-empty string "
                f"(default {DEFAULT_PREFIX!r})"
            )
        if isinstance(self.unstamped_events, str):
            raise ValueError(
                f"unstamped_events={self.unstamped_events!r} must be a tuple of event names, "
                f"e.g. {DEFAULT_UNSTAMPED!r}"
            )
        object.__setattr__(self, "unstamped_events", tuple(self.unstamped_events))

    def __repr__(self) -> str:
        return (
            f"ResumeConfig(redis_url={redact_url(self.redis_url)!r}, owner={self.owner!r}, "
            f"paths={self.paths!r}, detach_timeout={self.detach_timeout!r}, ttl={self.ttl!r}, "
            f"maxlen={self.maxlen!r}, tail_timeout={self.tail_timeout!r})"
        )
