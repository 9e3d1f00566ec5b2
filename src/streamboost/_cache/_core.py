"""The read and write engine behind ``Cache``: single flight, Redis envelopes, loads, refreshes.

Runs only off the hit path: on a miss, a stale or early-refresh hit, and for Redis reads.
A Redis envelope is ``[FORMAT, namespace version, fresh_until, stale_until, delta, value]``
with wall-clock times; the memory tier converts them to ``time.monotonic()``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import random
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from ._breaker import CircuitBreaker
from ._codec import encode
from ._errors import CacheValueTooLarge
from ._memory import Entry, MemoryStore
from ._metrics import CacheStats
from ._spec import LoaderSpec

if TYPE_CHECKING:
    from ._events import InvalidationListener
    from ._redis import RedisStore

logger = logging.getLogger("streamboost.cache")
T = TypeVar("T")
FORMAT = 1


class _Failed:
    """Redis was skipped (breaker open) or failed: the caller falls back to the loader."""


FAILED = _Failed()
Fetched = tuple[int, list[bytes | None]]


def _silence(future: asyncio.Future[Any]) -> None:
    # A leader's error reaches followers that await it; with no follower it is not "lost".
    if not future.cancelled():
        future.exception()


class CacheCore:
    """State and engine; ``Cache`` adds construction and the public API."""

    entries: OrderedDict[bytes, Entry]
    stats: CacheStats
    breaker: CircuitBreaker
    timeout: float
    max_value_bytes: int
    lock_timeout: float
    beta: float
    _local: MemoryStore | None
    _remote: RedisStore | None
    _listener: InvalidationListener | None
    _inflight: dict[bytes, asyncio.Future[tuple[Any, str]]]
    _refreshing: dict[bytes, asyncio.Task[None]]
    _load_histogram: Any

    async def resolve(
        self,
        spec: LoaderSpec,
        key: bytes,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        fetched: Fetched | _Failed | None = None,
    ) -> Any:
        """The slow path of a call: local stale or early hit, single flight, Redis, loader."""
        stats = self.stats
        entry = self.entries.get(key)
        if entry is not None:
            now = time.monotonic()
            if now < entry.fresh_until:
                if self._early(entry.delta, entry.fresh_until - now):
                    self._refresh(spec, key, args, kwargs)
                stats.hits += 1
                return entry.value
            if now < entry.stale_until:
                self._refresh(spec, key, args, kwargs)
                stats.stale += 1
                return entry.value
            assert self._local is not None
            self._local.delete((key,))
        if self._listener is not None:
            self._listener.start()
        while (future := self._inflight.get(key)) is not None:
            try:
                value, result = await asyncio.shield(future)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if future.cancelled() and task is not None and not task.cancelling():
                    continue  # the leader was cancelled, not us: one of us leads now
                raise
            self._count(result)
            return value
        future = asyncio.get_running_loop().create_future()
        future.add_done_callback(_silence)
        self._inflight[key] = future
        try:
            value, result = await self._fetch_or_load(spec, key, args, kwargs, fetched)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as exc:
            future.set_exception(exc)
            raise
        else:
            future.set_result((value, result))
        finally:
            if self._inflight.get(key) is future:
                del self._inflight[key]
        self._count(result)
        return value

    def _count(self, result: str) -> None:
        stats = self.stats
        if result == "hit":
            stats.hits += 1
        elif result == "miss":
            stats.misses += 1
        elif result == "stale":
            stats.stale += 1
        else:
            stats.errors += 1

    def _early(self, delta: float, remaining: float) -> bool:
        """XFetch (Vattani et al. 2015): refresh before expiry with rising probability."""
        return delta > 0 and -delta * self.beta * math.log(1.0 - random.random()) >= remaining

    async def _fetch_or_load(
        self,
        spec: LoaderSpec,
        key: bytes,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        fetched: Fetched | _Failed | None,
    ) -> tuple[Any, str]:
        remote = self._remote
        if remote is None:
            return await self._load(spec, key, args, kwargs, 0), "miss"
        listener = self._listener
        epoch = listener.epoch if listener is not None else 0
        if fetched is None:
            if listener is not None and listener.listening:
                # Events keep the namespace version current: one GET, not an MGET with it.
                version = listener.version
                payload = await self._remote_call(remote.get, key)
                fetched = payload if isinstance(payload, _Failed) else (version, [payload])
            else:
                fetched = await self._remote_call(remote.get_many, [key])
        if isinstance(fetched, _Failed):
            return await self._load(spec, key, args, kwargs, None), "error"
        version, (payload,) = fetched
        found = self._accept(spec, key, args, kwargs, version, payload, epoch)
        if found is not None:
            return found
        if spec.lock:
            return await self._load_locked(spec, key, args, kwargs, version)
        return await self._load(spec, key, args, kwargs, version), "miss"

    def _accept(
        self,
        spec: LoaderSpec,
        key: bytes,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        version: int,
        payload: bytes | None,
        epoch: int,
    ) -> tuple[Any, str] | None:
        """Decode a Redis envelope; None when absent, expired, outdated or undecodable."""
        if payload is None:
            return None
        try:
            fmt, stored_version, fresh_until, stale_until, delta, raw = orjson.loads(payload)
            if fmt != FORMAT or stored_version != version:
                return None
            value = spec.decoder(raw)
        except (ValueError, TypeError, KeyError):
            return None  # the return type changed without a version bump: reload
        now = time.time()
        if now >= stale_until:
            return None
        if self._local is not None and self._may_fill(epoch):
            mono = time.monotonic()
            entry = Entry(
                value, mono + fresh_until - now, mono + stale_until - now, delta, self.beta, ()
            )
            self._local.put(key, entry)
        if now < fresh_until:
            if self._early(delta, fresh_until - now):
                self._refresh(spec, key, args, kwargs)
            return value, "hit"
        self._refresh(spec, key, args, kwargs)
        return value, "stale"

    def _may_fill(self, epoch: int) -> bool:
        listener = self._listener
        return listener is None or (listener.listening and listener.epoch == epoch)

    async def _load(
        self,
        spec: LoaderSpec,
        key: bytes,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        version: int | None,
    ) -> Any:
        """Run the loader and store its value; ``version=None`` skips Redis (it just failed)."""
        epoch = self._listener.epoch if self._listener is not None else 0
        start = time.perf_counter()
        value = await spec.func(*args, **kwargs)
        delta = time.perf_counter() - start
        self.stats.observe_load(delta)
        self._load_histogram.record(delta, {"cache": self.stats.name})
        payload = encode(value)
        if len(payload) > self.max_value_bytes:
            raise CacheValueTooLarge(
                f"{spec.func_id} returned a value of {len(payload)} bytes encoded, over "
                f"max_value_bytes={self.max_value_bytes}; cache something smaller or raise "
                "max_value_bytes on the Cache"
            )
        spec.decoder  # noqa: B018 - fail on an undecodable return type at the first load
        tags = spec.tags_for(args, kwargs)
        ttl, stale_ttl = spec.ttl, spec.stale_ttl
        if self._local is not None and self._may_fill(epoch):
            mono = time.monotonic()
            entry = Entry(value, mono + ttl, mono + ttl + stale_ttl, delta, self.beta, tags)
            self._local.put(key, entry)
        remote = self._remote
        if remote is not None and version is not None:
            now = time.time()
            head = orjson.dumps([FORMAT, version, now + ttl, now + ttl + stale_ttl, delta])
            envelope = head[:-1] + b"," + payload + b"]"
            px = max(1, math.ceil((ttl + stale_ttl) * 1000))
            await self._remote_call(remote.set, key, envelope, px, tags)
        return value

    async def _load_locked(
        self,
        spec: LoaderSpec,
        key: bytes,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        version: int,
    ) -> tuple[Any, str]:
        """Load under a Redis lock so one process loads; waiters poll without a connection."""
        remote = self._remote
        assert remote is not None
        token = os.urandom(16).hex().encode()
        px = math.ceil(self.lock_timeout * 1000)
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.005
        while True:
            locked = await self._remote_call(remote.try_lock, key, token, px)
            if locked is True or isinstance(locked, _Failed):
                break
            # Between polls no pool connection is held: each command borrows and returns one.
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)
            epoch = self._listener.epoch if self._listener is not None else 0
            fetched = await self._remote_call(remote.get_many, [key])
            if isinstance(fetched, tuple):
                version, (payload,) = fetched
                found = self._accept(spec, key, args, kwargs, version, payload, epoch)
                if found is not None:
                    return found
            if time.monotonic() >= deadline:
                break  # the holder is slow or gone: load without the lock
        try:
            return await self._load(spec, key, args, kwargs, version), "miss"
        finally:
            if locked is True:
                await self._remote_call(remote.unlock, key, token)

    def _refresh(
        self, spec: LoaderSpec, key: bytes, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        """Reload ``key`` in the background, once at a time; the task is kept until done."""
        if key in self._refreshing:
            return
        task = asyncio.get_running_loop().create_task(self._refresh_run(spec, key, args, kwargs))
        self._refreshing[key] = task
        task.add_done_callback(lambda _: self._refreshing.pop(key, None))

    async def reload(
        self, spec: LoaderSpec, key: bytes, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """Run the loader now and store its value, whatever the cache holds."""
        version: int | None = 0
        listener = self._listener
        if listener is not None and listener.listening:
            version = listener.version
        elif self._remote is not None:
            fetched = await self._remote_call(self._remote.get_many, [])
            version = fetched[0] if isinstance(fetched, tuple) else None
        return await self._load(spec, key, args, kwargs, version)

    async def _refresh_run(
        self, spec: LoaderSpec, key: bytes, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        try:
            await self.reload(spec, key, args, kwargs)
        except Exception:
            logger.warning("background refresh of %s failed", spec.func_id, exc_info=True)

    async def _remote_call(self, op: Callable[..., Awaitable[T]], *args: Any) -> T | _Failed:
        """Run a Redis operation with the timeout and breaker; FAILED instead of raising."""
        remote = self._remote
        assert remote is not None
        breaker = self.breaker
        if not breaker.allow():
            return FAILED
        try:
            async with asyncio.timeout(self.timeout):
                result = await op(*args)
        except remote.errors as exc:
            opened = breaker.opened
            breaker.failure()
            if breaker.opened != opened:
                logger.warning(
                    "cache %s: Redis failing (%r); skipping it for %.1fs",
                    self.stats.name,
                    exc,
                    breaker.recovery,
                )
            return FAILED
        except BaseException:
            breaker.abandon()
            raise
        breaker.success()
        return result
