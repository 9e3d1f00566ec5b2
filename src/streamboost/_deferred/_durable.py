"""Durable mode: a Redis stream outbox with a consumer-group worker.

``add()`` XADDs before ``put()`` returns, so an accepted item survives a crash of the app. The
worker reads with XREADGROUP, calls the sink, then XACKs and XDELs the entries in one
transaction (the stream only holds unfinished work). Entries a dead consumer read but never
acknowledged are taken over with XAUTOCLAIM once idle for ``claim_idle`` seconds. Delivery is
at least once; ``Entry.key`` lets the sink upsert.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from typing import Any

import orjson

from .._ratelog import RateLimitedLog
from .._redact import redact_url
from ._commit import Committer
from ._config import Entry

logger = logging.getLogger("streamboost.deferred")

_Raw = tuple[bytes, dict[bytes, bytes]]


def consumer_name() -> str:
    """Unique per process: host, pid and a random suffix (a restarted process is a new one)."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class StreamOutbox:
    def __init__(
        self,
        url: str,
        *,
        stream: str,
        group: str,
        consumer: str,
        max_batch: int,
        max_delay: float,
        claim_idle: float,
    ) -> None:
        from redis.asyncio import Redis

        self._redis: Any = Redis.from_url(url)
        self.url = redact_url(url)
        self._log = RateLimitedLog(logger)
        self.stream = stream
        self.group = group
        self.consumer = consumer
        self._max_batch = max_batch
        self._max_delay = max_delay
        self._claim_idle_ms = max(1, int(claim_idle * 1000))
        self._claim_every = max(0.05, claim_idle / 2)
        self._draining = False
        self._next_claim = 0.0
        self.in_flight = 0  # read by this worker, not yet acknowledged
        self._outgoing: list[tuple[dict[bytes, Any], asyncio.Future[None]]] = []
        self._wake: asyncio.Future[None] | None = None
        self._sender: asyncio.Task[None] | None = None
        self._closing = False

    async def ensure_group(self) -> None:
        from redis.exceptions import ResponseError

        try:
            await self._redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def connect(self, writer: str) -> None:
        """Create the consumer group; a Redis that cannot be used is one clear error."""
        from redis.exceptions import RedisError

        try:
            await self.ensure_group()
        except (RedisError, OSError) as exc:
            detail = " ".join(str(exc).split()) or type(exc).__name__
            raise ConnectionError(
                f"streamboost: deferred writer {writer!r} cannot use Redis at {self.url} "
                f"({type(exc).__name__}: {detail}); start Redis there or fix durable="
            ) from exc

    def start(self) -> None:
        """Start the sender: one task for the writer's life, so ``put()`` creates none."""
        if self._sender is None:
            self._sender = asyncio.get_running_loop().create_task(
                self._send(), name=f"streamboost-outbox-{self.stream}"
            )

    async def add(self, entry: Entry[Any]) -> None:
        """Returns once the entry is on the stream. Concurrent calls share one pipeline."""
        fields = {b"k": entry.key, b"t": repr(entry.accepted_at), b"d": orjson.dumps(entry.item)}
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._outgoing.append((fields, done))
        wake = self._wake
        if wake is not None:
            self._wake = None
            wake.set_result(None)
        await done

    async def _send(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._outgoing:
                if self._closing:
                    return
                # Woken by the first add(); the adds of the same loop iteration run before
                # this task resumes, so they join one pipeline.
                self._wake = loop.create_future()
                await self._wake
                continue
            batch, self._outgoing = self._outgoing, []
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for fields, _ in batch:
                        pipe.xadd(self.stream, fields)
                    results = await pipe.execute(raise_on_error=False)
            except Exception as exc:
                results = [exc] * len(batch)
            for (_, done), result in zip(batch, results, strict=True):
                if done.done():
                    continue  # the put() was cancelled
                if isinstance(result, Exception):
                    done.set_exception(result)
                else:
                    done.set_result(None)

    async def length(self) -> int:
        return int(await self._redis.xlen(self.stream))

    async def aclose(self) -> None:
        """Send what put() handed over, stop the sender, close the connections."""
        self._closing = True
        wake, self._wake = self._wake, None
        if wake is not None:
            wake.set_result(None)
        sender, self._sender = self._sender, None
        if sender is not None:
            await sender
        await self._redis.aclose()

    def drain(self) -> None:
        """Ask ``run()`` to stop once nothing is left to read or reclaim."""
        self._draining = True

    async def run(self, committer: Committer) -> None:
        """Consume until ``drain()`` was called and nothing is left; survives Redis outages."""
        failures = 0
        self._next_claim = 0.0
        need_group = True  # inside the loop: a Redis gone at the first step is retried too
        while True:
            try:
                if need_group:
                    await self.ensure_group()
                    need_group = False
                if await self._step(committer):
                    await self.forget_self()
                    return
                if failures:
                    self._log.forget("worker")
                    logger.info(
                        "streamboost stream %r (%s): worker back after %d failed attempts",
                        self.stream, self.url, failures,
                    )  # fmt: skip
                failures = 0
            except Exception as exc:
                delay = min(5.0, 0.05 * 2**failures)
                failures += 1
                # While Redis is down this repeats every 5 s: one line a minute.
                self._log.log(
                    logging.ERROR,
                    "worker",
                    "streamboost stream %r (%s): worker error (attempt %d), retrying every "
                    "5 s at most: %r",
                    self.stream, self.url, failures, exc,
                )  # fmt: skip
                await asyncio.sleep(delay)
                if "NOGROUP" in str(exc):  # the stream was deleted under us
                    need_group = True

    async def _step(self, committer: Committer) -> bool:
        """One batch; True when draining and there is nothing left."""
        if time.monotonic() >= self._next_claim:
            self._next_claim = time.monotonic() + self._claim_every
            claimed = await self._reclaim()
            if claimed:
                await self._process(committer, claimed)
                return False
            await self._forget_dead_consumers()
        block = None if self._draining else max(50, int(self._max_delay * 1000))
        entries = await self._read(self._max_batch, block)
        if not entries:
            return self._draining
        if len(entries) < self._max_batch and not self._draining:
            # Let a batch fill up for at most max_delay after its oldest item was accepted.
            wait = _accepted_at(entries[0]) + self._max_delay - time.time()
            if wait > 0:
                await asyncio.sleep(min(wait, self._max_delay))
            entries += await self._read(self._max_batch - len(entries), None)
        await self._process(committer, entries)
        return False

    async def _read(self, count: int, block: int | None) -> list[_Raw]:
        response = await self._redis.xreadgroup(
            self.group, self.consumer, {self.stream: ">"}, count=count, block=block
        )
        if not response:
            return []
        return list(response[0][1])

    async def _forget_dead_consumers(self) -> None:
        """Delete consumers with nothing pending that were idle past ``claim_idle``.

        Live consumers read at least every ``max_delay`` and so are never that idle; a consumer
        with pending entries is kept until XAUTOCLAIM has taken them over.
        """
        for info in await self._redis.xinfo_consumers(self.stream, self.group):
            name = info["name"]
            if isinstance(name, bytes):
                name = name.decode()
            if name != self.consumer and not info["pending"] and info["idle"] > self._claim_idle_ms:
                await self._redis.xgroup_delconsumer(self.stream, self.group, name)

    async def forget_self(self) -> None:
        """Leave the group on a clean stop, if nothing is pending for this consumer."""
        for info in await self._redis.xinfo_consumers(self.stream, self.group):
            name = info["name"]
            if (name.decode() if isinstance(name, bytes) else name) == self.consumer:
                if not info["pending"]:
                    await self._redis.xgroup_delconsumer(self.stream, self.group, self.consumer)
                return

    async def _reclaim(self) -> list[_Raw]:
        claimed: list[_Raw] = []
        cursor: bytes | str = "0-0"
        for _ in range(100):  # bounded: the cursor walks the pending list once
            reply = await self._redis.xautoclaim(
                self.stream,
                self.group,
                self.consumer,
                self._claim_idle_ms,
                start_id=cursor,
                count=self._max_batch - len(claimed),
            )
            cursor = reply[0]
            claimed.extend(raw for raw in reply[1] if raw and raw[1])
            if cursor in (b"0-0", "0-0") or len(claimed) >= self._max_batch:
                break
        if claimed:
            logger.warning(
                "stream %r: reclaimed %d entries from a dead consumer", self.stream, len(claimed)
            )
        return claimed

    async def _process(self, committer: Committer, raws: list[_Raw]) -> None:
        ids = [raw[0] for raw in raws]
        batch: list[Entry[Any]] = []
        broken: list[Entry[Any]] = []
        for entry_id, fields in raws:
            try:
                batch.append(
                    Entry(fields[b"k"].decode(), orjson.loads(fields[b"d"]), float(fields[b"t"]))
                )
            except (KeyError, ValueError, orjson.JSONDecodeError):
                broken.append(Entry(entry_id.decode(), repr(fields), time.time()))
        self.in_flight = len(ids)
        try:
            if broken:
                await committer.dead_letter(broken, "malformed stream entry")
            if batch:
                await committer.commit(batch)
        finally:
            # On an error (the dead-letter store failed too) the entries stay pending here and
            # are reclaimed with XAUTOCLAIM after claim_idle.
            self.in_flight = 0
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.xack(self.stream, self.group, *ids)
            pipe.xdel(self.stream, *ids)
            await pipe.execute()


def _accepted_at(raw: _Raw) -> float:
    try:
        return float(raw[1][b"t"])
    except (KeyError, ValueError):
        return time.time()
