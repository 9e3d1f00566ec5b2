"""Invalidation events through Redis pub/sub: memory tiers and namespace versions.

Every write and invalidation of a Redis-backed cache publishes an event on the namespace's
channel. Each process drops the named keys from its memory tier (tiered caches) and learns the
namespace version from namespace bumps, so a plain GET can check an entry's version without
reading the version key. While the subscription is down the memory tier is cleared and left
empty and reads fall back to one MGET of the version and the key: a missed event cannot leave
a stale entry behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

import orjson

from ._memory import MemoryStore

if TYPE_CHECKING:
    from ._redis import RedisStore

logger = logging.getLogger("streamboost.cache")


class InvalidationListener:
    """Subscribes to the namespace channel and applies other processes' events locally."""

    def __init__(self, remote: RedisStore, local: MemoryStore | None, origin: bytes) -> None:
        self._remote = remote
        self._local = local
        self._origin = origin.decode()
        self.listening = False
        self.version = 0  # the namespace version, current while ``listening``
        # Bumped on every event and every (re)subscription: a Redis read that started before
        # a bump may carry a value an event has since invalidated, so it is not kept locally.
        self.epoch = 0
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._subscribed = asyncio.Event()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="streamboost-cache-invalidations"
            )

    async def wait_subscribed(self) -> None:
        self.start()
        await self._subscribed.wait()

    async def aclose(self) -> None:
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def bumped(self, version: int) -> None:
        """This process bumped the namespace: use the new version at once."""
        self.version = max(self.version, version)
        self.epoch += 1

    async def _run(self) -> None:
        delay = 0.05
        # The flag, not only the cancellation: redis-py may turn a cancelled read into a
        # ConnectionError, which would otherwise look like a lost connection to retry.
        while not self._closing:
            try:
                await self._listen()
            except self._remote.errors as exc:
                logger.warning(
                    "cache invalidation channel lost (%r); retrying in %.2fs", exc, delay
                )
            finally:
                self._lost()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    async def _listen(self) -> None:
        pubsub: Any = self._remote.client.pubsub()
        try:
            await pubsub.subscribe(self._remote.channel)
            while True:
                message = await pubsub.get_message(timeout=1.0)
                if message is not None and message["type"] == "subscribe":
                    break
            # Read after subscribing, so no bump can fall between the read and the first event.
            version, _ = await self._remote.get_many([])
            self.bumped(version)
            self.listening = True
            self._subscribed.set()
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5.0)
                if message is not None and message["type"] == "message":
                    self.apply(message["data"])
        finally:
            with contextlib.suppress(*self._remote.errors):
                await asyncio.shield(pubsub.aclose())

    def _lost(self) -> None:
        self.listening = False
        self._subscribed.clear()
        self.epoch += 1
        if self._local is not None:
            self._local.clear()

    def apply(self, data: bytes) -> None:
        self.epoch += 1
        try:
            origin, kind, keys, version = orjson.loads(data)
        except ValueError:
            return
        if kind == "c":
            self.version = max(self.version, version)
        if origin == self._origin or self._local is None:
            return
        if kind == "c":
            self._local.clear()
        else:
            self._local.delete(key.encode() for key in keys)
