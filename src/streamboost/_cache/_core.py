"""The read and write engine behind ``Cache``: single flight, Redis reads, loads, the lock.

Runs only off the hit path: on a miss, a stale or early-refresh hit, and for Redis reads.
Redis entries are envelopes (``_envelope``) with wall-clock times; the memory tier converts
them to ``time.monotonic()``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from ._breaker import CircuitBreaker, Failed
from ._codec import encode
from ._envelope import pack, unpack
from ._errors import CacheValueTooLarge
from ._memory import Entry, MemoryStore
from ._metrics import CacheStats
from ._refresh import Refreshes, refresh_early
from ._spec import LoaderSpec

if TYPE_CHECKING:
    from ._events import InvalidationListener
    from ._redis import RedisStore

logger = logging.getLogger("streamboost.cache")
T = TypeVar("T")


Fetched = tuple[int, list[bytes | None]]
Found = tuple[Any, str]
# What _accept returns for an entry that is no envelope of the declared type: an error.
CORRUPT = "corrupt"


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
    refreshes: Refreshes
    _load_histogram: Any

    async def resolve(
        self,
        spec: LoaderSpec,
        key: bytes,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        fetched: Fetched | Failed | None = None,
    ) -> Any:
        """The slow path of a call: local stale or early hit, single flight, Redis, loader."""
        stats = self.stats
        entry = self.entries.get(key)
        if entry is not None:
            now = time.monotonic()
            if now < entry.fresh_until:
                if refresh_early(entry.delta, self.beta, entry.fresh_until - now):
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
            self.stats.count(result)
            return value
        future = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            value, result = await self._fetch_or_load(spec, key, args, kwargs, fetched)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as exc:
            future.set_exception(exc)
            # Followers re-raise it; with none, asyncio would log it as never retrieved.
            future.exception()
            raise
        else:
            future.set_result((value, result))
        finally:
            if self._inflight.get(key) is future:
                del self._inflight[key]
        self.stats.count(result)
        return value

    async def _fetch_or_load(
        self,
        spec: LoaderSpec,
        key: bytes,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        fetched: Fetched | Failed | None,
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
                fetched = payload if isinstance(payload, Failed) else (version, [payload])
            else:
                fetched = await self._remote_call(remote.get_many, [key])
        if isinstance(fetched, Failed):
            return await self._load(spec, key, args, kwargs, None), "error"
        version, (payload,) = fetched
        found = self._accept(spec, key, args, kwargs, version, payload, epoch)
        if isinstance(found, tuple):
            return found
        if found == CORRUPT:
            assert payload is not None
            await self._remote_call(remote.drop, key, payload)
            try:
                return await self._load(spec, key, args, kwargs, version), "error"
            except Exception:
                self.stats.errors += 1  # counted even when the loader fails too
                raise
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
    ) -> Found | str | None:
        """Decode a Redis envelope; None when absent, expired or outdated, CORRUPT when it is
        no envelope or its value does not decode to the return type."""
        if payload is None:
            return None
        try:
            envelope = unpack(payload, version)
            if envelope is None:
                return None
            fresh_until, stale_until, delta, raw = envelope
            value = spec.decoder(raw)
        except Exception as exc:  # planted or from another return type: never raised to callers
            logger.debug("%s: undecodable Redis entry dropped: %r", spec.func_id, exc)
            return CORRUPT
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
            if refresh_early(delta, self.beta, fresh_until - now):
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
            envelope = pack(version, now + ttl, now + ttl + stale_ttl, delta, payload)
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
            if locked is True or isinstance(locked, Failed):
                break
            # Between polls no pool connection is held: each command borrows and returns one.
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)
            epoch = self._listener.epoch if self._listener is not None else 0
            fetched = await self._remote_call(remote.get_many, [key])
            if isinstance(fetched, tuple):
                version, (payload,) = fetched
                found = self._accept(spec, key, args, kwargs, version, payload, epoch)
                if isinstance(found, tuple):
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
        self.refreshes.start(key, self._refresh_run, spec, key, args, kwargs)

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

    async def _remote_call(self, op: Callable[..., Awaitable[T]], *args: Any) -> T | Failed:
        """Run a Redis operation under the breaker: fail open, never raise a Redis error."""
        assert self._remote is not None
        return await self.breaker.call(op, *args, errors=self._remote.errors, name=self.stats.name)
