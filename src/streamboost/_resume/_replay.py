"""A resumed request: the events after its ``Last-Event-ID`` from the log, then the live tail.

Any process sharing the Redis answers it: the id ``<stream id>-<seq>`` names the stream, and
the key is bound to the request's owner, so another owner's resume finds nothing (404), like
an unknown, expired or trimmed stream. A stream that ended with nothing after the id answers
204, which tells an ``EventSource`` to stop reconnecting.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from typing import Final

from .._types import Receive, Send
from ._log import RedisLog

LAST_EVENT_ID: Final = re.compile(rb"([0-9a-f]{32})-([0-9]{1,18})")
_HEADERS: Final = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


def _after(data: bytes, prefix: bytes, seq: int) -> bytes | None:
    """``data`` from the event after ``seq``; None when the batch does not hold that event."""
    at = data.find(b"%s%d" % (prefix, seq))
    if at < 0:
        return None
    j = at + len(prefix) + len(str(seq))
    for _ in range(2):  # the id line's end, then the blank line
        if data[j : j + 2] == b"\r\n":
            j += 2
        elif data[j : j + 1] in (b"\r", b"\n"):
            j += 1
        else:
            return None  # a longer number: not this id
    return data[j:]


async def _empty(send: Send, status: int) -> None:
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def replay(
    log: RedisLog, owner: str | None, sid: bytes, seq: int, receive: Receive, send: Send
) -> None:
    """Answer one resume: 404 (not this owner's, gone, trimmed), 204 (over), else the rest."""
    if owner is None:
        await _empty(send, 404)
        return
    key = log.key(owner, sid.decode())
    prefix = b"id: " + sid + b"-"
    try:
        entries = await log.after(key, seq)
        if not entries:
            newest = await log.last(key)
            if newest is None:
                await _empty(send, 404)
                return
            if b"e" in newest:
                # Ended: maybe between the two reads, so read again before saying so.
                entries = await log.after(key, seq)
                if not entries:
                    await _empty(send, 204)
                    return
    except log.errors:
        await _empty(send, 503)
        return
    chunks: list[bytes] = []
    end = False
    cursor: bytes | str = f"0-{seq}"
    for number, (entry, fields) in enumerate(entries):
        data = fields.get(b"d", b"")
        if number == 0 and data:
            rest = _after(data, prefix, seq)
            if rest is None and data.find(b"%s%d" % (prefix, seq + 1)) < 0:
                await _empty(send, 404)  # the events after seq were trimmed (maxlen)
                return
            data = data if rest is None else rest
        chunks.append(data)
        cursor = entry
        end = b"e" in fields
    await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
    await send({"type": "http.response.body", "body": b"".join(chunks), "more_body": not end})
    if end:
        return
    await _live(log, key, cursor, receive, send)


async def _live(log: RedisLog, key: str, cursor: bytes | str, receive: Receive, send: Send) -> None:
    """The live tail: each new batch as it is logged, until the end, a silence or the client."""

    async def client_left() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    watcher = asyncio.ensure_future(client_left())
    try:
        while True:
            read = asyncio.ensure_future(log.tail(key, cursor))
            await asyncio.wait((read, watcher), return_when=asyncio.FIRST_COMPLETED)
            if not read.done():
                read.cancel()
                with contextlib.suppress(BaseException):
                    await read
                return  # the client left
            try:
                entries = read.result()
            except log.errors:
                entries = []
            if not entries:
                break  # tail_timeout of silence (or Redis failed): end; the client may resume
            end = False
            for entry, fields in entries:
                cursor = entry
                end = end or b"e" in fields
                await send(
                    {"type": "http.response.body", "body": fields.get(b"d", b""), "more_body": True}
                )
            if end:
                break
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    finally:
        watcher.cancel()
        with contextlib.suppress(BaseException):
            await watcher
