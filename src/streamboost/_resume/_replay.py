"""A resumed request: the events after its ``Last-Event-ID`` from the log, then the live tail.

Any process sharing the Redis answers it: the id ``<stream id>-<seq>`` names the stream, and
the key is bound to the request's owner, so another owner's resume finds nothing (404), like
an unknown, expired or trimmed stream. A stream that ended with nothing after the id answers
204, which tells an ``EventSource`` to stop reconnecting.

The log trails what a client got by one write (the batch goes to the client first, then to
Redis), so a resume can arrive before the batch holding its id is logged: a stream not in
the log yet is waited for (``timeout``) before the 404, and the first batch the live tail
gets is cut after the id like the first replayed one, so nothing is sent twice.
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
            if newest is None and await log.tail(key, "0-0", log.config.timeout):
                newest = await log.last(key)  # its first write was still on its way
                entries = await log.after(key, seq)
            if newest is None:
                await _empty(send, 404)
                return
            if not entries and b"e" in newest:
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
            cut = _cut(data, prefix, seq)
            if cut is None:
                await _empty(send, 404)  # the events after seq were trimmed (maxlen)
                return
            data = cut
        chunks.append(data)
        cursor = entry
        end = b"e" in fields
    await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
    await send({"type": "http.response.body", "body": b"".join(chunks), "more_body": not end})
    if end:
        return
    # Nothing replayed: the first live batch may still hold events up to seq.
    await _live(log, key, cursor, None if entries else (prefix, seq), receive, send)


def _cut(data: bytes, prefix: bytes, seq: int) -> bytes | None:
    """The first batch read after ``seq``: from the event after it; None for a gap."""
    rest = _after(data, prefix, seq)
    if rest is not None:
        return rest
    return data if data.find(b"%s%d" % (prefix, seq + 1)) >= 0 else None


async def _live(
    log: RedisLog,
    key: str,
    cursor: bytes | str,
    after: tuple[bytes, int] | None,
    receive: Receive,
    send: Send,
) -> None:
    """The live tail: each new batch as it is logged, until the end, a silence or the client.
    ``after``: (id prefix, seq) when the first batch with data is to be cut after seq."""

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
                data = fields.get(b"d", b"")
                if after is not None and data:
                    cut = _cut(data, *after)  # None cannot be a gap here: the log is live
                    data, after = (data if cut is None else cut), None
                await send({"type": "http.response.body", "body": data, "more_body": True})
            if end:
                break
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    finally:
        watcher.cancel()
        with contextlib.suppress(BaseException):
            await watcher
