"""DeferredWriter: batching write-behind with retries, dead letters and an optional Redis outbox."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import secrets
import time
from collections import deque
from types import TracebackType
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry

from ._commit import Committer, Sink
from ._config import Entry, QueueFull, RetryPolicy, WriterClosed, check_writer_options
from ._deadletter import DeadLetterStore, open_dead_letters
from ._durable import StreamOutbox, consumer_name
from ._metrics import metrics_for

T = TypeVar("T")
logger = logging.getLogger("streamboost.deferred")


class DeferredWriter(Generic[T]):
    """Accepts items at once and hands them to ``sink`` in batches, off the request path.

    ``sink(entries: list[Entry[T]])`` (async or sync) is called with at most ``max_batch``
    entries, at the latest ``max_delay`` seconds after the oldest was accepted. A batch leaves
    the buffer only after the sink returned; failures are retried per ``retries`` (an int or a
    ``RetryPolicy``) and then stored in ``dead_letter`` (a JSONL path or a ``redis://`` URL).

    ``durable="redis://host:port/db"`` puts every item on the Redis stream ``stream`` before
    ``put()`` returns; a consumer-group worker (in this process unless ``worker=False``) feeds
    the sink and acknowledges after it committed.
    """

    def __init__(
        self,
        sink: Sink,
        *,
        name: str = "messages",
        max_batch: int = 500,
        max_delay: float = 0.2,
        retries: int | RetryPolicy = 5,
        max_queue: int = 100_000,
        block: bool = True,
        dead_letter: str | os.PathLike[str] | None = None,
        durable: str | None = None,
        stream: str | None = None,
        group: str = "streamboost",
        worker: bool = True,
        claim_idle: float = 60.0,
        drain_timeout: float = 30.0,
        put_timeout: float = 2.0,
        registry: CollectorRegistry | None = None,
    ) -> None:
        check_writer_options(
            sink,
            name=name,
            max_batch=max_batch,
            max_delay=max_delay,
            max_queue=max_queue,
            claim_idle=claim_idle,
            drain_timeout=drain_timeout,
            put_timeout=put_timeout,
            durable=durable,
        )
        self.name = name
        self.max_batch = max_batch
        self.max_delay = max_delay
        self.max_queue = max_queue
        self.block = block
        self.drain_timeout = drain_timeout
        self.put_timeout = put_timeout
        self.stream = stream or f"streamboost:deferred:{name}"
        self._buffer: deque[Entry[T]] = deque()
        self._has_items = asyncio.Event()
        self._batch_ready = asyncio.Event()
        self._not_full = asyncio.Event()
        self._not_full.set()
        self._task: asyncio.Task[None] | None = None
        self._accepting = False
        self._closing = False
        # Keys: a random per-writer prefix plus a counter; unique across processes, cheap per put.
        self._prefix = f"{secrets.token_hex(8)}-"
        self._seq = itertools.count(1)
        self._outbox: StreamOutbox | None = None
        self._run_worker = worker
        if durable is not None:
            self._outbox = StreamOutbox(
                durable,
                stream=self.stream,
                group=group,
                consumer=consumer_name(),
                max_batch=max_batch,
                max_delay=max_delay,
                claim_idle=claim_idle,
            )
        target = dead_letter
        if target is None:
            target = durable if durable is not None else f"streamboost-dead-letter-{name}.jsonl"
        self.dead_letters: DeadLetterStore = open_dead_letters(target, stream=f"{self.stream}:dead")
        self._committer = Committer(
            name=name,
            sink=sink,
            retry=RetryPolicy.coerce(retries),
            dead_letters=self.dead_letters,
            metrics=metrics_for(registry),
            depth=self.queue_depth,
        )

    def __repr__(self) -> str:
        mode = f"durable stream {self.stream!r}" if self._outbox else "in memory"
        return f"<DeferredWriter {self.name!r} {mode}, {self.queue_depth()} pending>"

    @property
    def written(self) -> int:
        return self._committer.written

    @property
    def retried(self) -> int:
        return self._committer.retried

    @property
    def dead_lettered(self) -> int:
        return self._committer.dead_lettered

    @property
    def lost(self) -> int:
        """Items neither written nor dead-lettered: the dead-letter store failed at close."""
        return self._committer.lost

    @property
    def durable(self) -> bool:
        return self._outbox is not None

    @property
    def running(self) -> bool:
        """True between ``start()`` and ``aclose()``: ``put()`` accepts items."""
        return self._accepting

    def queue_depth(self) -> int:
        """Items accepted by this process and not yet committed (durable: read, not acked)."""
        if self._outbox is not None:
            return self._outbox.in_flight
        return len(self._buffer)

    async def put(self, item: T) -> None:
        """Accept ``item``; returns once it is buffered (durable: once it is on the stream).

        When ``max_queue`` items wait, waits for room, or raises ``QueueFull`` if ``block=False``.
        """
        if not self._accepting:
            raise WriterClosed(
                f"writer {self.name!r} is not running; start it with `async with writer:` "
                "or StreamBoost(app, writers=[writer])"
            )
        entry = Entry(f"{self._prefix}{next(self._seq):x}", item, time.time())
        if self._outbox is not None:
            try:
                async with asyncio.timeout(self.put_timeout):
                    await self._outbox.add(entry)
            except TimeoutError:
                raise TimeoutError(
                    f"writer {self.name!r}: Redis did not take the item within "
                    f"put_timeout={self.put_timeout} s; it may still reach the stream. Check "
                    "Redis, or raise put_timeout"
                ) from None
            return
        buffer = self._buffer
        while len(buffer) >= self.max_queue:
            if not self.block:
                raise QueueFull(
                    f"writer {self.name!r}: {len(buffer)} items wait (max_queue={self.max_queue});"
                    " raise max_queue, or use block=True to wait for room"
                )
            self._not_full.clear()
            await self._not_full.wait()
            if not self._accepting:
                raise WriterClosed(f"writer {self.name!r} closed while put() waited for room")
        buffer.append(entry)
        size = len(buffer)
        if size == 1:
            self._has_items.set()
        if size >= self.max_batch:
            self._batch_ready.set()

    async def start(self, *, worker: bool | None = None) -> None:
        """Start the flusher (durable: the stream worker, unless ``worker`` is False).

        ``async with writer:`` calls this; ``worker`` overrides the constructor's choice.
        """
        if self._task is not None or self._accepting:
            raise RuntimeError(f"writer {self.name!r} is already started")
        if self._closing:
            raise RuntimeError(f"writer {self.name!r} is closed; create a new one")
        if self._outbox is not None:
            await self._outbox.ensure_group()
            self._outbox.start()
            if self._run_worker if worker is None else worker:
                self._task = asyncio.create_task(
                    self._outbox.run(self._committer), name=f"streamboost-writer-{self.name}"
                )
        else:
            self._task = asyncio.create_task(
                self._flush_loop(), name=f"streamboost-writer-{self.name}"
            )
        self._accepting = True

    async def aclose(self, drain_timeout: float | None = None) -> int:
        """Stop accepting, write everything pending, stop. Returns the items left unwritten.

        After ``drain_timeout`` seconds (default: the constructor's) the rest goes to the dead
        letters (durable: it stays on the stream for the next worker) and is reported by count.
        """
        timeout = self.drain_timeout if drain_timeout is None else drain_timeout
        self._accepting = False
        self._closing = True
        self._has_items.set()
        self._batch_ready.set()
        self._not_full.set()
        task, self._task = self._task, None
        if self._outbox is not None:
            self._outbox.drain()
        if task is not None:
            done, _ = await asyncio.wait({task}, timeout=timeout)
            if not done:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            elif not task.cancelled() and task.exception() is not None:
                logger.error("writer %r: worker failed", self.name, exc_info=task.exception())
        left = await self._leftovers()
        if self._outbox is not None:
            await self._outbox.aclose()
        aclose = getattr(self.dead_letters, "aclose", None)
        if aclose is not None:
            await aclose()
        return left

    async def _leftovers(self) -> int:
        if self._outbox is not None:
            left = await self._outbox.length()
            if left:
                logger.warning(
                    "writer %r: %d items stay on stream %r for the next worker",
                    self.name, left, self.stream,
                )  # fmt: skip
            return left
        left = len(self._buffer)
        if left:
            logger.error("writer %r: drain deadline passed; %d items not written", self.name, left)
            await self._committer.dead_letter_or_lose(list(self._buffer), "drain deadline passed")
            self._buffer.clear()
        return left

    async def __aenter__(self) -> DeferredWriter[T]:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _flush_loop(self) -> None:
        buffer = self._buffer
        while True:
            if not buffer:
                if self._closing:
                    return
                self._has_items.clear()
                await self._has_items.wait()
                continue
            wait = buffer[0].accepted_at + self.max_delay - time.time()
            if not self._closing and len(buffer) < self.max_batch and wait > 0:
                self._batch_ready.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(wait, self.max_delay)):
                        await self._batch_ready.wait()
            batch = list(itertools.islice(buffer, self.max_batch))
            try:
                await self._committer.commit(batch)
            except Exception:
                logger.exception("writer %r: dead-letter store failed; batch kept", self.name)
                await asyncio.sleep(min(self.max_delay * 10, 5.0))
                continue
            for _ in range(len(batch)):
                buffer.popleft()
            self._not_full.set()
