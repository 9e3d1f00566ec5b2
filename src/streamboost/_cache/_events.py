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
import time
from typing import TYPE_CHECKING, Any

import orjson

from .._ratelog import RateLimitedLog
from ._memory import MemoryStore

if TYPE_CHECKING:
    from ._redis import RedisStore

logger = logging.getLogger("streamboost.cache")


class InvalidationListener:
    """Subscribes to the namespace channel and applies other processes' events locally."""

    def __init__(
        self, remote: RedisStore, local: MemoryStore | None, origin: bytes, *, label: str
    ) -> None:
        self._remote = remote
        self.label = label  # "cache 'name' (redis://host:port/db)", URL redacted, for the logs
        self.failures = 0  # failed (re)subscriptions since the channel last worked
        self._log = RateLimitedLog(logger)
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
        lost_at = 0.0
        # The flag, not only the cancellation: redis-py may turn a cancelled read into a
        # ConnectionError, which would otherwise look like a lost connection to retry.
        while not self._closing:
            try:
                await self._listen()
            except self._remote.errors as exc:
                if self.listening or self.failures == 0:
                    lost_at = time.monotonic()
                    delay = 0.05
                    self.failures = 0
                self.failures += 1
                self._log_lost(exc, lost_at)
            finally:
                self._lost()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    def _log_lost(self, exc: BaseException, lost_at: float) -> None:
        """One WARNING when the channel goes down, then at most one a minute while it stays."""
        if self.failures == 1:
            self._log.forget("down")  # a new outage: its first line goes out at once
        effect = (
            "the memory tier is cleared and bypassed"
            if self._local is not None
            else "namespace versions are read from Redis"
        )
        if self.failures == 1:
            self._log.warning(
                "down",
                "streamboost %s: invalidation channel lost (%s); %s until it is back; "
                "retrying every 2 s at most",
                self.label, _short(exc), effect,
            )  # fmt: skip
        else:
            self._log.warning(
                "down",
                "streamboost %s: invalidation channel still down after %d attempts in %.0f s "
                "(%s); %s",
                self.label, self.failures, time.monotonic() - lost_at, _short(exc), effect,
            )  # fmt: skip

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
            if self.failures:
                logger.info(
                    "streamboost %s: invalidation channel back after %d failed attempts",
                    self.label, self.failures,
                )  # fmt: skip
                self.failures = 0
            self.listening = True
            self._subscribed.set()
            while not self._closing:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=None)
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
        try:
            origin, kind, keys, version = orjson.loads(data)
        except ValueError:
            return
        if kind == "c":
            self.version = max(self.version, version)
        if origin == self._origin or self._local is None:
            return  # this process's own changes are already applied locally
        self.epoch += 1
        if kind == "c":
            self._local.clear()
        else:
            self._local.delete(key.encode() for key in keys)


def _short(exc: BaseException) -> str:
    """``ConnectionError: Error 111 connecting to ...``: the type and message, on one line."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
