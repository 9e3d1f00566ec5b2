"""One batch through the sink: retries with backoff, then the dead letters. Counted per batch."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from ._config import Entry, RetryPolicy
from ._deadletter import DeadLetterStore
from ._metrics import DeferredMetrics
from ._sync import as_async

logger = logging.getLogger("streamboost.deferred")

Sink = Callable[[list[Entry[Any]]], Awaitable[object]] | Callable[[list[Entry[Any]]], object]


class Committer:
    """Calls the sink for a batch until it succeeds or the retries run out.

    Doubles as the metrics source of its writer: plain-int counters read at scrape time.
    """

    def __init__(
        self,
        *,
        name: str,
        sink: Sink,
        retry: RetryPolicy,
        dead_letters: DeadLetterStore,
        metrics: DeferredMetrics,
        depth: Callable[[], int],
    ) -> None:
        self.name = name
        self._sink: Callable[[list[Entry[Any]]], Awaitable[object]] = as_async(sink)
        self._retry = retry
        self.dead_letters = dead_letters
        self._depth = depth
        self.written = 0
        self.retried = 0
        self.dead_lettered = 0
        self.lost = 0
        self._batch_size = metrics.batch_size.labels(name)
        self._duration = metrics.write_duration.labels(name)
        self._lag = metrics.lag.labels(name)
        metrics.add(self)

    def queue_depth(self) -> int:
        return self._depth()

    def outcome_labels(self) -> tuple[str, str, str]:
        return ("written", "retried", "dead_lettered")

    async def commit(self, batch: list[Entry[Any]]) -> bool:
        """True when the sink committed ``batch``, False when it went to the dead letters.

        Raises only when the dead-letter store fails too; the caller then keeps the batch.
        """
        attempt = 0
        while True:
            started = time.perf_counter()
            try:
                await self._sink(batch)
            except Exception as exc:
                self._duration.observe(time.perf_counter() - started)
                if attempt >= self._retry.retries:
                    await self.dead_letter(batch, exc)
                    return False
                self.retried += len(batch)
                delay = self._retry.delay(attempt)
                attempt += 1
                logger.warning(
                    "writer %r: sink failed for %d items (attempt %d of %d), retry in %.3f s: %r",
                    self.name, len(batch), attempt, self._retry.retries + 1, delay, exc,
                )  # fmt: skip
                await asyncio.sleep(delay)
                continue
            now = time.perf_counter()
            self._duration.observe(now - started)
            self._batch_size.observe(len(batch))
            self._lag.observe(max(0.0, time.time() - min(e.accepted_at for e in batch)))
            self.written += len(batch)
            return True

    async def dead_letter(self, batch: Sequence[Entry[Any]], error: BaseException | str) -> None:
        reason = error if isinstance(error, str) else repr(error)
        await self.dead_letters.store(self.name, batch, reason)
        self.dead_lettered += len(batch)
        logger.error(
            "writer %r: %d items moved to the dead letters (%s) after %d attempts: %s",
            self.name, len(batch), self.dead_letters.description, self._retry.retries + 1, reason,
        )  # fmt: skip

    async def dead_letter_or_lose(self, batch: Sequence[Entry[Any]], reason: str) -> None:
        """Dead-letter ``batch``; when the store fails too, count the items lost and log them."""
        try:
            await self.dead_letter(batch, reason)
        except Exception as exc:
            # Nowhere left to put them: counted and logged, never silently gone.
            self.lost += len(batch)
            logger.error(
                "writer %r: %d items LOST: the dead-letter store (%s) failed too: %r",
                self.name, len(batch), self.dead_letters.description, exc,
            )  # fmt: skip
