"""Cross-process invalidation of the memory tier through Redis pub/sub.

Every write, invalidation and namespace bump of a tiered cache publishes an event on the
namespace's channel; each process drops the named keys from its memory tier. The memory tier is
only filled while the subscription is live: if it drops, the tier is cleared and reads go to
Redis until the listener has re-subscribed, so a missed event cannot leave a stale entry behind.
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

    def __init__(self, remote: RedisStore, local: MemoryStore, origin: bytes) -> None:
        self._remote = remote
        self._local = local
        self._origin = origin.decode()
        self.listening = False
        # Bumped on every event and every (re)subscription: a Redis read that started before
        # a bump may carry a value an event has since invalidated, so it is not kept locally.
        self.epoch = 0
        self._task: asyncio.Task[None] | None = None
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
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        delay = 0.05
        while True:
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
            self.epoch += 1
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
        self._local.clear()

    def apply(self, data: bytes) -> None:
        self.epoch += 1
        try:
            origin, kind, keys = orjson.loads(data)
        except ValueError:
            return
        if origin == self._origin:
            return
        if kind == "c":
            self._local.clear()
        else:
            self._local.delete(key.encode() for key in keys)
