"""Where the boosted chat app persists: SQLite by default, PostgreSQL when configured.

``CHAT_DATABASE_URL``: ``sqlite:///path.sqlite3`` (default: a file in the temp directory) or
``postgresql://user@host/db``. Messages go through a ``DeferredWriter`` (one batched insert per
batch), the assistant's answer through ``delta_buffer`` while it streams. Every write is keyed,
so a retried or redelivered write is an upsert, never a duplicate.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import tempfile
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any, Protocol

import orjson

from streamboost import DeferredWriter, Delta, Entry, delta_buffer, drain_deferred

Row = dict[str, str]


class Store(Protocol):
    async def open(self) -> None: ...
    async def close(self) -> None: ...
    def save_messages(self, entries: list[Entry[Row]]) -> Any: ...
    def save_answer(self, session_id: str, key: str, delta: Delta) -> Any: ...


class SQLiteStore:
    """stdlib sqlite3; its sync calls run in streamboost's deferred thread pool."""

    def __init__(self, path: str, table: str = "chat_messages") -> None:
        self.path, self.table = path, table
        self._lock = threading.Lock()  # one connection, used from pool threads in turn
        self._db: sqlite3.Connection | None = None

    async def open(self) -> None:
        self._db = sqlite3.connect(self.path, check_same_thread=False)
        self._db.execute(
            f"CREATE TABLE IF NOT EXISTS {self.table} (key TEXT PRIMARY KEY, session_id TEXT, "
            "role TEXT, content TEXT NOT NULL DEFAULT '')"
        )
        self._db.commit()

    async def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _execute(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        assert self._db is not None, "store is not open"
        with self._lock:
            self._db.executemany(sql, rows)
            self._db.commit()

    def save_messages(self, entries: list[Entry[Row]]) -> None:
        rows = [(e.key, e.item["session_id"], e.item["role"], e.item["content"]) for e in entries]
        self._execute(
            f"INSERT INTO {self.table} VALUES (?, ?, ?, ?) ON CONFLICT (key) DO NOTHING", rows
        )

    def save_answer(self, session_id: str, key: str, delta: Delta) -> None:
        # Idempotent: the text is placed at its offset, so a repeated write changes nothing.
        self._execute(
            f"INSERT INTO {self.table} VALUES (?, ?, 'assistant', ?) ON CONFLICT (key) DO UPDATE "
            f"SET content = substr({self.table}.content, 1, ?) || excluded.content",
            [(key, session_id, delta.text, delta.offset)],
        )


class PostgresStore:
    """asyncpg: one ``INSERT ... SELECT unnest(...)`` per batch."""

    def __init__(self, dsn: str, table: str = "chat_messages") -> None:
        self.dsn, self.table = dsn, table
        self.pool: Any = None

    async def open(self) -> None:
        import asyncpg  # type: ignore[import-untyped]

        self.pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=8)
        await self.pool.execute(
            f"CREATE TABLE IF NOT EXISTS {self.table} (key text PRIMARY KEY, session_id text, "
            "role text, content text NOT NULL DEFAULT '')"
        )

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()
            self.pool = None

    async def save_messages(self, entries: list[Entry[Row]]) -> None:
        await self.pool.execute(
            f"INSERT INTO {self.table} SELECT * FROM unnest($1::text[], $2::text[], $3::text[], "
            "$4::text[]) ON CONFLICT (key) DO NOTHING",
            [e.key for e in entries],
            [e.item["session_id"] for e in entries],
            [e.item["role"] for e in entries],
            [e.item["content"] for e in entries],
        )

    async def save_answer(self, session_id: str, key: str, delta: Delta) -> None:
        await self.pool.execute(
            f"INSERT INTO {self.table} VALUES ($1, $2, 'assistant', $3) ON CONFLICT (key) DO "
            f"UPDATE SET content = left({self.table}.content, $4) || excluded.content",
            key,
            session_id,
            delta.text,
            delta.offset,
        )


def open_store(url: str | None = None, *, table: str = "chat_messages") -> Store:
    url = url or os.environ.get("CHAT_DATABASE_URL") or ""
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresStore(url, table)
    path = url.removeprefix("sqlite:///") or os.path.join(
        tempfile.gettempdir(), "streamboost-chat.sqlite3"
    )
    return SQLiteStore(path, table)


def _content(event: bytes) -> str:
    if not event.startswith(b"data: {"):
        return ""
    choices = orjson.loads(event[6:]).get("choices") or [{}]
    return str(choices[0].get("delta", {}).get("content") or "")


class ChatWrites:
    """The boosted app's writes: a batching message writer and the answer's delta buffer."""

    def __init__(self, store: Store | None = None, **writer_options: Any) -> None:
        self.store = store or open_store()
        writer_options.setdefault("name", "chat_messages")
        self.messages: DeferredWriter[Row] = DeferredWriter(
            self.store.save_messages, **writer_options
        )

    @property
    def active(self) -> bool:
        """False when the app runs without its lifespan (then nothing is persisted)."""
        return self.messages.running

    @asynccontextmanager
    async def lifespan(self, app: object) -> AsyncIterator[None]:
        """FastAPI lifespan: open the store, run the writer, drain everything at shutdown."""
        await self.store.open()
        try:
            async with self.messages:
                yield
                await drain_deferred(20.0)  # defer() jobs may still put messages
        finally:
            await self.store.close()

    async def persist_answer(
        self, events: AsyncIterator[bytes], session_id: str
    ) -> AsyncIterator[bytes]:
        """Pass the SSE events through, persisting the answer's text as it streams."""
        sink = partial(self.store.save_answer, session_id, secrets.token_hex(8))
        async with delta_buffer(sink) as answer:
            async for event in events:
                answer.append(_content(event))
                yield event
