"""The asyncio Redis client of the shared admission limit and of resumable streams.

Both want the same thing: ``redis`` imported only when first used (it is an extra), with an
install hint naming the feature; socket timeouts bounding every call; no retries (the caller
decides what a failure means); and one client per event loop, since a redis-py asyncio
connection belongs to the loop that opened it (tests and ``asyncio.run`` make new loops).
"""

from __future__ import annotations

import asyncio
from typing import Any

# Before ``redis`` is imported nothing of it can be raised; the connect errors of the socket.
BASE_ERRORS: tuple[type[BaseException], ...] = (OSError, TimeoutError)


def redis_errors() -> tuple[type[BaseException], ...]:
    """What a failed call raises, once ``redis`` is importable (see ``new_client``)."""
    from redis.exceptions import RedisError

    return (RedisError, OSError, TimeoutError)


def new_client(url: str, *, timeout: float, read_timeout: float | None = None, what: str) -> Any:
    """A ``redis.asyncio.Redis`` for ``url``: connect and read timeouts, no retries.

    ``read_timeout`` (default ``timeout``) bounds a reply; a blocking read needs more than
    its block. ``what`` names the feature in the hint when ``redis`` is not installed.
    """
    try:
        import redis.asyncio as aioredis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise RuntimeError(f"{what} the redis client: pip install 'streamboost[redis]'") from exc
    return aioredis.Redis.from_url(
        url,
        retry=Retry(NoBackoff(), 0),
        socket_timeout=timeout if read_timeout is None else read_timeout,
        socket_connect_timeout=timeout,
    )


class PerLoop:
    """A value built once per running event loop (the last loop's is kept)."""

    __slots__ = ("_loop", "value")

    def __init__(self) -> None:
        self.value: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def current(self) -> Any:
        """This loop's value, or None when it has to be built (then call ``set``)."""
        if self.value is not None and self._loop is asyncio.get_running_loop():
            return self.value
        return None

    def set(self, value: Any) -> Any:
        self.value, self._loop = value, asyncio.get_running_loop()
        return value

    def take(self) -> Any:
        """The value, forgotten (to close it)."""
        value, self.value, self._loop = self.value, None, None
        return value
