"""Where items go after the last retry: a local JSONL file or a Redis stream. Never dropped."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import orjson

from .._redact import redact_url
from ._config import Entry

logger = logging.getLogger("streamboost.deferred")


def _line(writer: str, entry: Entry[Any], error: str) -> bytes:
    record = {
        "writer": writer,
        "key": entry.key,
        "accepted_at": entry.accepted_at,
        "dead_at": time.time(),
        "error": error,
        "item": entry.item,
    }
    # default=repr: an item orjson cannot encode is still kept, as its repr.
    return orjson.dumps(record, default=repr)


class DeadLetterStore(Protocol):
    description: str

    async def store(self, writer: str, entries: Sequence[Entry[Any]], error: str) -> None: ...


class JsonlDeadLetters:
    """Appends one JSON object per item to a local file (``fsync`` per batch), created 0600."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.description = f"file {self.path}"

    def _append(self, data: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # 0600 whatever the umask: the items are user data.
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "ab") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())

    async def store(self, writer: str, entries: Sequence[Entry[Any]], error: str) -> None:
        data = b"".join(_line(writer, entry, error) + b"\n" for entry in entries)
        await asyncio.to_thread(self._append, data)


class RedisDeadLetters:
    """XADDs one entry per item (field ``d``: the JSON record) to a Redis stream."""

    def __init__(self, url: str, stream: str) -> None:
        from redis.asyncio import Redis

        self._redis: Any = Redis.from_url(url)
        self.stream = stream
        self.description = f"Redis stream {stream!r}"

    async def store(self, writer: str, entries: Sequence[Entry[Any]], error: str) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            for entry in entries:
                pipe.xadd(self.stream, {"d": _line(writer, entry, error)})
            await pipe.execute()

    async def aclose(self) -> None:
        await self._redis.aclose()


def open_dead_letters(target: str | os.PathLike[str], *, stream: str) -> DeadLetterStore:
    """``redis://...`` (or ``rediss://``, ``unix://``) opens a stream; anything else is a path."""
    text = os.fspath(target)
    if text.startswith(("redis://", "rediss://", "unix://")):
        return RedisDeadLetters(text, stream)
    if "://" in text:
        raise ValueError(
            f"dead_letter={redact_url(text)!r} looks like a URL: use redis://, rediss://, "
            "unix:// or a file path"
        )
    return JsonlDeadLetters(text)
