"""``Cache``: where cached values live (memory, Redis, or memory in front of Redis) and the
operations on it: multi-get, warm-up and invalidation by key, tag or namespace; ``CachedCall``,
one bound call of a cached function, for ``get_many`` and ``warm``."""

from __future__ import annotations

import asyncio
import os
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry

from .._redact import redact_url
from ._breaker import CircuitBreaker, Failed
from ._core import CORRUPT, CacheCore, Fetched
from ._memory import MemoryStore
from ._metrics import CacheStats, register_otel, register_prometheus
from ._refresh import Refreshes
from ._spec import LoaderSpec

ENV_URL = "STREAMBOOST_CACHE_URL"
R_co = TypeVar("R_co", covariant=True)


def _positive(name: str, value: float, default: str) -> None:
    if not value > 0:
        raise ValueError(f"{name}={value!r} must be > 0 (default {default})")


class Cache(CacheCore):
    """A cache for ``@cached`` functions: ``memory://``, ``redis://`` or ``tiered+redis://``.

    ``url=None`` reads ``STREAMBOOST_CACHE_URL`` and defaults to ``memory://``. See the README
    for every option.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        namespace: str = "streamboost",
        name: str | None = None,
        tiered: bool = False,
        max_entries: int = 10_000,
        timeout: float = 0.05,
        max_value_bytes: int = 1 << 20,
        failure_threshold: int = 5,
        recovery_time: float = 5.0,
        lock_timeout: float = 5.0,
        xfetch_beta: float = 1.0,
        registry: CollectorRegistry | None = None,
        meter_provider: Any = None,
    ) -> None:
        url = url or os.environ.get(ENV_URL) or "memory://"
        scheme = urlsplit(url).scheme
        if scheme.startswith("tiered+"):
            tiered, url, scheme = True, url.removeprefix("tiered+"), scheme.removeprefix("tiered+")
        if scheme not in ("memory", "redis", "rediss", "unix"):
            raise ValueError(
                f"url={redact_url(url)!r}: use memory://, redis://host:port/db, rediss://... or "
                "tiered+redis://host:port/db (memory in front of Redis)"
            )
        if tiered and scheme == "memory":
            raise ValueError(
                f"tiered=True needs a Redis url, got {redact_url(url)!r} (tiered+redis://...)"
            )
        if not namespace or any(c.isspace() for c in namespace):
            raise ValueError(f"namespace={namespace!r} must be a non-empty string without spaces")
        _positive("max_entries", max_entries, "10000")
        _positive("timeout", timeout, "0.05 seconds")
        _positive("max_value_bytes", max_value_bytes, "1048576")
        _positive("failure_threshold", failure_threshold, "5")
        _positive("recovery_time", recovery_time, "5.0 seconds")
        _positive("lock_timeout", lock_timeout, "5.0 seconds")
        if xfetch_beta < 0:
            raise ValueError(f"xfetch_beta={xfetch_beta!r} must be >= 0 (default 1.0; 0 = off)")
        self.url = url
        self.namespace = namespace
        self.key_prefix = namespace.encode() + b":"
        self.timeout = timeout
        self.max_value_bytes = max_value_bytes
        self.lock_timeout = lock_timeout
        self.beta = xfetch_beta
        self.origin = os.urandom(8).hex().encode()
        self.breaker = CircuitBreaker(threshold=failure_threshold, recovery=recovery_time)
        self._remote = None
        self._local = None
        self._listener = None
        if scheme == "memory":
            self._local = MemoryStore(max_entries)
        else:
            from ._events import InvalidationListener
            from ._redis import RedisStore

            self._remote = RedisStore(url, namespace=namespace, origin=self.origin, timeout=timeout)
            if tiered:
                self._local = MemoryStore(max_entries)
            self._listener = InvalidationListener(self._remote, self._local, self.origin)
        # Read by the decorated functions' fast path; always empty for a Redis-only cache.
        self.entries = self._local.entries if self._local is not None else OrderedDict()
        self._inflight = {}
        self.refreshes = Refreshes()
        self.stats = CacheStats(name or namespace)
        register_prometheus(self.stats, registry)
        self._load_histogram = register_otel(self.stats, meter_provider)

    async def wait_refreshes(self) -> None:
        """Wait for the background refreshes (stale-while-revalidate, XFetch) now running."""
        await self.refreshes.wait()

    @classmethod
    def from_url(cls, url: str | None = None, **options: Any) -> Cache:
        """``Cache.from_url("redis://127.0.0.1:6379/0", namespace="myapp")``."""
        return cls(url, **options)

    @property
    def backend(self) -> str:
        """``"memory"``, ``"redis"`` or ``"tiered"``."""
        if self._remote is None:
            return "memory"
        return "tiered" if self._local is not None else "redis"

    async def __aenter__(self) -> Cache:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop background refreshes and the invalidation listener; close Redis connections."""
        await self.refreshes.aclose()
        if self._listener is not None:
            await self._listener.aclose()
        if self._remote is not None:
            await self._remote.aclose()

    async def get_many(self, *calls: CachedCall[Any]) -> list[Any]:
        """Several cached calls of this cache, with the Redis reads in one round trip."""
        results: list[Any] = [None] * len(calls)
        pending: list[int] = []
        now = time.monotonic()
        for i, call in enumerate(calls):
            if call.cache is not self:
                raise ValueError(f"{call!r} belongs to another cache; use its own get_many()")
            entry = self.entries.get(call.key)
            if entry is not None and now < entry.early:
                self.stats.hits += 1
                results[i] = entry.value
            else:
                pending.append(i)
        if not pending:
            return results
        fetched: Fetched | Failed | None = None
        remote = self._remote
        epoch = self._listener.epoch if self._listener is not None else 0
        if remote is not None and not self._served_without_redis(calls, pending):
            fetched = await self._remote_call(remote.get_many, [calls[i].key for i in pending])
        misses: list[tuple[int, Fetched | Failed | None]] = []
        for n, i in enumerate(pending):
            if not isinstance(fetched, tuple):
                misses.append((i, fetched))
                continue
            call, (version, payloads) = calls[i], fetched
            found = self._accept(
                call.spec, call.key, call.args, call.kwargs, version, payloads[n], epoch
            )
            if isinstance(found, tuple):
                results[i] = found[0]
                self.stats.count(found[1])
            else:  # resolve() decodes a corrupt entry again, drops it and counts the error
                misses.append((i, (version, [payloads[n] if found == CORRUPT else None])))
        if misses:
            loads = [
                self.resolve(calls[i].spec, calls[i].key, calls[i].args, calls[i].kwargs, one)
                for i, one in misses
            ]
            for (i, _), value in zip(misses, await asyncio.gather(*loads), strict=True):
                results[i] = value
        return results

    def _served_without_redis(self, calls: tuple[CachedCall[Any], ...], pending: list[int]) -> bool:
        # Stale local entries are served as they are and loads in flight are joined.
        return all(calls[i].key in self.entries or calls[i].key in self._inflight for i in pending)

    async def warm(self, calls: Iterable[CachedCall[Any]], *, concurrency: int = 8) -> int:
        """Run each call through the cache with at most ``concurrency`` loads at once.

        Returns how many calls were warmed; raises an ExceptionGroup of the failures after
        every call has been tried.
        """
        _positive("concurrency", concurrency, "8")
        pending = iter(calls)
        errors: list[Exception] = []
        warmed = 0

        async def worker() -> None:
            nonlocal warmed
            for call in pending:
                try:
                    await self.resolve(call.spec, call.key, call.args, call.kwargs)
                    warmed += 1
                except Exception as exc:
                    errors.append(exc)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        if errors:
            raise ExceptionGroup(f"cache warm-up: {len(errors)} calls failed", errors)
        return warmed

    # -- invalidation ---------------------------------------------------------------------
    # Invalidation is not fail-open: a Redis error propagates, since the caller must know the
    # old value may still be served.

    async def invalidate_keys(self, keys: Sequence[bytes]) -> None:
        if self._local is not None:
            self._local.delete(keys)
        if self._remote is not None and keys:
            async with asyncio.timeout(self.timeout):
                await self._remote.delete(keys)

    async def invalidate_tags(self, *tags: str) -> None:
        """Drop every entry stored with any of ``tags`` (``@cached(tags=...)``)."""
        if self._local is not None:
            self._local.delete(self._local.tagged(tags))
        if self._remote is not None and tags:
            async with asyncio.timeout(self.timeout):
                keys = await self._remote.invalidate_tags(tags)
            if self._local is not None:  # entries read from Redis carry no local tags
                self._local.delete(keys)

    async def invalidate_namespace(self) -> None:
        """Drop every entry of this namespace: bumps its version in Redis (never KEYS)."""
        if self._local is not None:
            self._local.clear()
        if self._remote is not None and self._listener is not None:
            async with asyncio.timeout(self.timeout):
                self._listener.bumped(await self._remote.bump_namespace())

    async def wait_ready(self) -> None:
        """Redis: wait until this process hears invalidations (and the memory tier is used).

        Bound it with ``asyncio.timeout``; without Redis it waits until Redis is back.
        """
        if self._listener is not None:
            await self._listener.wait_subscribed()

    def __repr__(self) -> str:
        return (
            f"Cache({redact_url(self.url)!r}, backend={self.backend!r}, "
            f"namespace={self.namespace!r})"
        )


class CachedCall(Generic[R_co]):
    """One call of a cached function, not yet run: for ``Cache.get_many`` and ``Cache.warm``."""

    __slots__ = ("args", "cache", "key", "kwargs", "spec")

    def __init__(
        self,
        cache: Cache,
        spec: LoaderSpec,
        key: bytes,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        self.cache = cache
        self.spec = spec
        self.key = key
        self.args = args
        self.kwargs = kwargs

    def __repr__(self) -> str:
        return f"CachedCall({self.key.decode(errors='replace')!r})"
