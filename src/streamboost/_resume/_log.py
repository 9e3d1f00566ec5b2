"""The Redis log of resumable streams: one Redis stream per (owner, stream id).

An entry is one flushed batch (or the few handed over while the stream's previous write was
in flight, see ``_writer``): its stamped events (field ``d``), id ``0-<last seq>`` so an
``XRANGE``/``XREAD`` after ``0-<n>`` returns exactly the batches holding events after ``n``.
The end is field ``e`` on the last batch, or an entry ``1-0`` of its own (greater than every
``0-x``). The key expires ``ttl`` after the last write (refreshed every ``ttl / 2`` of
writes). ``redis`` is imported when a stream is first logged; one client (and one writer)
per event loop.
"""

from __future__ import annotations

import hashlib
from typing import Any

from .._redis_client import BASE_ERRORS, PerLoop, new_client, redis_errors
from ._config import ResumeConfig
from ._writer import LogWriter


class RedisLog:
    """XADD / XRANGE / XREAD of the stream logs, with one client per event loop."""

    def __init__(self, config: ResumeConfig) -> None:
        self.config = config
        self._clients = PerLoop()
        self._writer = PerLoop()
        self.errors: tuple[type[BaseException], ...] = BASE_ERRORS

    def key(self, owner: str, sid: str) -> str:
        digest = hashlib.sha256(owner.encode()).hexdigest()[:32]
        return f"{self.config.key_prefix}{digest}:{sid}"

    def _connect(self) -> tuple[Any, Any]:
        clients = self._clients.current()
        if clients is not None:
            return clients  # type: ignore[no-any-return]
        config = self.config
        what = "resumable streams need"
        # The tail's blocking reads get their own client, whose read timeout covers the block.
        clients = (
            new_client(config.redis_url, timeout=config.timeout, what=what),
            new_client(
                config.redis_url,
                timeout=config.timeout,
                read_timeout=config.tail_timeout + config.timeout,
                what=what,
            ),
        )
        self.errors = redis_errors()
        return self._clients.set(clients)  # type: ignore[no-any-return]

    def writer(self) -> LogWriter:
        """This event loop's writer of batches (see ``_writer``)."""
        writer: LogWriter | None = self._writer.current()
        if writer is None:
            config = self.config
            client = self._connect()[0]
            ttl = max(1, round(config.ttl))
            writer = LogWriter(client, config.maxlen, ttl, config.timeout, self.errors)
            self._writer.set(writer)
        return writer

    async def after(self, key: str, seq: int) -> list[tuple[bytes, dict[bytes, bytes]]]:
        """The entries holding events after ``seq`` (and the end entry)."""
        client = self._connect()[0]
        entries: list[tuple[bytes, dict[bytes, bytes]]] = await client.xrange(key, f"(0-{seq}", "+")
        return entries

    async def last(self, key: str) -> dict[bytes, bytes] | None:
        """The newest entry's fields, None when there is no such stream."""
        client = self._connect()[0]
        entries = await client.xrevrange(key, "+", "-", count=1)
        return entries[0][1] if entries else None

    async def tail(
        self, key: str, entry: bytes | str, wait: float | None = None
    ) -> list[tuple[bytes, dict[bytes, bytes]]]:
        """Entries after ``entry``, waiting up to ``wait`` (``tail_timeout``) for the first."""
        client = self._connect()[1]
        wait = self.config.tail_timeout if wait is None else wait
        block = max(1, round(wait * 1000))
        answer = await client.xread({key: entry}, block=block)
        if not answer:
            return []
        entries: list[tuple[bytes, dict[bytes, bytes]]] = answer[0][1]
        return entries

    async def aclose(self) -> None:
        writer = self._writer.take()
        if writer is not None:
            await writer.aclose()
        clients = self._clients.take()
        if clients is not None:
            for client in clients:
                await client.aclose()
