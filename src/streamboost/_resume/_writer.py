"""Appending batches to the stream logs off the response's path: one writer per event loop.

A ``Tap`` hands each flushed batch to ``LogWriter.add`` and goes on (the client's write never
waits for Redis, so neither does the first token). One task per loop writes what is pending:
every stream with something new gets one ``XADD`` (its batches since its last write, joined,
as one entry whose id is the last seq, so a stream never gets more than one per batch), and
all of them go in one command (the ``_APPEND`` script) on a connection of its own, with one
reply. What the profile showed this saves, per batch: redis-py's pool checkout and release,
its command objects and timers, a reply to parse per command, and round trips: the writer
gathers for ``GATHER`` seconds before each write, and while a write is in flight new batches
wait and join, which is where a slow Redis turns into fewer writes rather than a queue of
them. A failed write makes its stream unresumable from then on (the log keeps no hole: later
batches are dropped, and a resume past the gap gets 404). The keys of one write are several
streams', so the Redis is one server (not a cluster), as for every ``redis_url`` here.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from typing import Any

from .._ratelog import RateLimitedLog

END_ID = b"1-0"
# Seconds the writer waits after its first news before it writes: the batches other streams
# flush meanwhile share the round trip, and a stream's next batch (or a short stream's end)
# joins its XADD. The log trails the client by this and one round trip; a resume that comes
# sooner is served anyway (``_replay``).
GATHER = 0.01
_warn = RateLimitedLog(logging.getLogger("streamboost.resume"))


# One command per write, whatever the number of streams in it, and one reply (the refused
# XADDs), so this process parses one reply per write. KEYS: the streams; ARGV: maxlen, ttl,
# then per stream its entry id, flags (1: refresh the TTL, 2: the end) and data. A refused
# XADD (e.g. a key of another type) is reported, and the other streams' go on.
_APPEND = b"""
local refused = {}
for i = 1, #KEYS do
  local at = (i - 1) * 3 + 3
  local flags = tonumber(ARGV[at + 1])
  local done
  if flags >= 2 then
    done = redis.pcall('XADD', KEYS[i], 'MAXLEN', '~', ARGV[1], ARGV[at],
                       'd', ARGV[at + 2], 'e', '1')
  else
    done = redis.pcall('XADD', KEYS[i], 'MAXLEN', '~', ARGV[1], ARGV[at], 'd', ARGV[at + 2])
  end
  if type(done) == 'table' and done.err then
    refused[#refused + 1] = i
    refused[#refused + 1] = done.err
  elseif flags > 0 then
    redis.call('EXPIRE', KEYS[i], ARGV[2])
  end
end
return refused
"""
_APPEND_SHA = hashlib.sha1(_APPEND).hexdigest().encode()
_FLAGS = (b"0", b"1", b"2", b"3")


def _text(message: object) -> str:
    return message.decode(errors="replace") if isinstance(message, bytes) else str(message)


def _pack(*args: bytes) -> bytes:
    """One command in RESP (``*<n>`` then each argument as a bulk string)."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        out.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(out)


class Pending:
    """One stream's log state, held by its ``Tap`` and, while it has news, by the writer."""

    __slots__ = ("done", "end", "expire", "failed", "key", "parts", "seq", "written")

    def __init__(self, key: str) -> None:
        self.key = key.encode()
        self.parts: list[bytes] = []  # batches not yet written
        self.seq = 0  # the last seq handed over
        self.written = 0  # the last seq in the log
        self.end = False  # the stream's end was handed over
        self.expire = False  # the next write refreshes the key's TTL
        self.failed = False  # a write failed: nothing more is logged
        self.done: asyncio.Future[None] | None = None  # set when the end is written (or failed)


class LogWriter:
    """The writer task of one event loop, over one connection of its own."""

    def __init__(
        self,
        client: Any,
        maxlen: int,
        ttl: int,
        timeout: float,
        errors: tuple[type[BaseException], ...],
    ) -> None:
        self._client = client
        self._timeout = timeout
        self._maxlen = b"%d" % maxlen
        self._ttl = b"%d" % ttl
        self._errors = errors
        self._pending: dict[int, Pending] = {}  # insertion order: the order of the first news
        self._wake = asyncio.Event()
        self._conn: Any = None
        self._started: float | None = None  # when the write in flight began
        self._watchdog: asyncio.TimerHandle | None = None
        self._timed_out = False  # the watchdog cancelled the write in flight
        self._task = asyncio.get_running_loop().create_task(self._run())

    def add(self, pending: Pending) -> None:
        self._pending[id(pending)] = pending
        self._wake.set()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            await asyncio.sleep(GATHER)
            self._wake.clear()
            batch = list(self._pending.values())
            self._pending.clear()
            self._started = loop.time()
            if self._watchdog is None:
                self._watchdog = loop.call_at(self._started + self._timeout, self._check)
            try:
                ended = await self._write(batch)
            except asyncio.CancelledError:
                if not self._timed_out:
                    self._fail(batch, None)
                    raise
                self._timed_out = False
                self._fail(batch, TimeoutError(f"no answer within timeout={self._timeout!r} s"))
            except Exception as exc:  # any failure: those streams are not resumable
                self._fail(batch, exc)
            else:
                for state in ended:
                    if state.done is not None and not state.done.done():
                        state.done.set_result(None)
            finally:
                self._started = None

    def _check(self) -> None:
        """The write deadline: one timer while writes go on, not one per write (a cancelled
        timer stays in the loop's heap until its time, and every timer op pays for it)."""
        self._watchdog = None
        started = self._started
        if started is None:
            return
        loop = asyncio.get_running_loop()
        if loop.time() - started >= self._timeout:
            self._timed_out = True
            self._task.cancel()
        else:
            self._watchdog = loop.call_at(started + self._timeout, self._check)

    async def _write(self, batch: list[Pending]) -> list[Pending]:
        """One ``EVALSHA`` of ``_APPEND`` for ``batch``; returns the streams whose end it wrote."""
        keys: list[bytes] = []
        args: list[bytes] = [self._maxlen, self._ttl]
        owners: list[Pending] = []
        ended: list[Pending] = []
        for state in batch:
            if state.failed:
                state.parts.clear()
                continue
            entry = b"0-%d" % state.seq if state.seq > state.written else END_ID
            state.written = state.seq
            data = state.parts[0] if len(state.parts) == 1 else b"".join(state.parts)
            state.parts.clear()
            flags = (2 if state.end else 0) | (1 if state.expire else 0)
            state.expire = False
            keys.append(state.key)
            args += (entry, _FLAGS[flags], data)
            owners.append(state)
            if state.end:
                ended.append(state)
        if not keys:
            return ended
        conn = self._conn
        if conn is None:
            # Without a socket timeout of its own: redis-py would then run each send in a task
            # of its own and each reply under a timer; the writer's watchdog is the deadline.
            pool = self._client.connection_pool
            conn = pool.connection_class(**{**pool.connection_kwargs, "socket_timeout": None})
            self._conn = conn
        count = b"%d" % len(keys)
        try:
            await conn.send_packed_command(
                _pack(b"EVALSHA", _APPEND_SHA, count, *keys, *args), check_health=False
            )
            try:
                refused = await conn.read_response()
            except self._errors as exc:
                if not _no_script(exc):
                    raise
                # Not in this Redis's script cache yet (or flushed): send it once.
                await conn.send_packed_command(
                    _pack(b"EVAL", _APPEND, count, *keys, *args), check_health=False
                )
                refused = await conn.read_response()
        except BaseException:
            self._conn = None  # redis-py disconnected it; a new one next time
            await conn.disconnect(nowait=True)
            raise
        for index, message in zip(refused[0::2], refused[1::2], strict=True):
            self._fail([owners[int(index) - 1]], RuntimeError(_text(message)))
        return ended

    def _fail(self, batch: list[Pending], exc: BaseException | None) -> None:
        if exc is not None:
            _warn.warning(
                "redis",
                "streamboost resume: appending to the stream log failed (%s: %s); "
                "%d stream(s) are no longer resumable",
                type(exc).__name__,
                exc,
                len(batch),
            )
        for state in batch:
            state.failed = True
            state.parts.clear()
            if state.done is not None and not state.done.done():
                state.done.set_result(None)

    async def aclose(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        if self._conn is not None:
            await self._conn.disconnect()
            self._conn = None


def _no_script(exc: BaseException) -> bool:
    from redis.exceptions import NoScriptError

    return isinstance(exc, NoScriptError)
