"""``Tap``: a resumable response's server side, below ``HTTPStream``.

It sees every message the send path writes (a coalesced stream's flushed batches, one
message each), stamps the events' ids, hands the stamped bytes to the client, then the batch
to the loop's ``LogWriter`` (at most one ``XADD`` per batch; the send does not wait for it).
When the client leaves, the app is not told: its sends still go to the log (the client's
side is a no-op) and its ``receive`` waits, for up to ``detach_timeout``; then the app gets
``http.disconnect`` and its next send an ``OSError``, as without resume.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable
from typing import Any

from .._types import Message, Receive, Scope, Send
from ._config import ResumeConfig
from ._log import RedisLog
from ._stamp import Stamper
from ._writer import LogWriter, Pending


class Tap:
    """One request on a resumable path: pass-through until an SSE response starts."""

    __slots__ = (
        "_app_queue",
        "_complete",
        "_config",
        "_cut",
        "_ended",
        "_expire_at",
        "_gone",
        "_log",
        "_pending",
        "_receive",
        "_send",
        "_stamper",
        "_timer",
        "_unstamped",
        "_watcher",
        "_writer",
        "owner",
    )

    def __init__(
        self,
        config: ResumeConfig,
        log: RedisLog,
        unstamped: frozenset[bytes],
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        self._config = config
        self._log = log
        self._unstamped = unstamped
        self._receive = receive
        self._send = send
        self.owner = config.owner(scope)
        self._stamper: Stamper | None = None
        self._pending: Pending | None = None  # the stream's log; None: nothing (more) to log
        self._writer: LogWriter | None = None
        self._gone = False  # the client left
        self._complete = False  # the body's last message was sent
        self._cut = False  # ...and detach_timeout passed, or the app is over
        self._ended = False  # the end was handed to the writer
        self._expire_at = 0.0
        self._watcher: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._app_queue: asyncio.Queue[Message] | None = None

    async def receive(self) -> Message:
        queue = self._app_queue
        if queue is None:
            message = await self._receive()
            if message["type"] != "http.disconnect" or self._app_queue is None:
                return message
            queue = self._app_queue  # the response became resumable while this call waited
        if self._cut:
            return {"type": "http.disconnect"}
        return await queue.get()

    def send(self, message: Message) -> Awaitable[None]:
        if self._stamper is None:
            if message["type"] == "http.response.start":
                self._start(message)
            if self._stamper is None:
                return self._send(message)
        return self._stamped(message)

    def _start(self, message: Message) -> None:
        if self.owner is None or message.get("status") != 200:
            return
        media = b""
        for name, value in message.get("headers", ()):
            if name.lower() == b"content-type":
                media = value.split(b";", 1)[0].strip().lower()
        if media != b"text/event-stream":
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # pragma: no cover - trio: resume needs asyncio
            return
        sid = secrets.token_hex(16)
        self._stamper = Stamper(sid.encode(), self._unstamped)
        self._pending = pending = Pending(self._log.key(self.owner, sid))
        pending.done = loop.create_future()
        self._writer = self._log.writer()
        self._app_queue = asyncio.Queue()
        self._watcher = loop.create_task(self._watch())

    async def _watch(self) -> None:
        """Reads the client's side: request messages to the app, a disconnect detaches."""
        queue = self._app_queue
        assert queue is not None
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                if self._complete:
                    # After the body's end: the disconnect of a finished exchange (servers say
                    # so then), nothing to detach from and no timer to arm; the app sees it.
                    queue.put_nowait(message)
                else:
                    self._client_left()
                return
            queue.put_nowait(message)

    def _client_left(self) -> None:
        if self._gone:
            return
        self._gone = True
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self._config.detach_timeout, self._detach_over)

    def _detach_over(self) -> None:
        self._cut = True
        if self._app_queue is not None:
            self._app_queue.put_nowait({"type": "http.disconnect"})

    async def _stamped(self, message: Message) -> None:
        if message["type"] != "http.response.body":
            if not self._gone:
                await self._send(message)
            return
        if self._cut:
            timeout = self._config.detach_timeout
            raise OSError(
                f"streamboost resume: the client left detach_timeout={timeout!r} s ago "
                "and did not come back to this stream"
            )
        stamper = self._stamper
        assert stamper is not None
        body = message.get("body", b"")
        if type(body) is not bytes:
            body = bytes(body)
        more = message.get("more_body", False)
        self._complete = not more
        out, logged = stamper.feed(body)
        last = stamper.seq
        if not more and (rest := stamper.rest()):
            logged.append(rest)
        if not self._gone:
            try:
                if out is body:
                    await self._send(message)
                else:
                    await self._send({"type": "http.response.body", "body": out, "more_body": more})
            except OSError:
                self._client_left()  # servers that raise on a gone client
        if self._pending is not None and (logged or not more):
            self._append(b"".join(logged), last, end=not more)

    def _append(self, data: bytes, last: int, *, end: bool) -> None:
        """Hand a batch to the loop's writer (it goes out without this send waiting)."""
        pending, writer = self._pending, self._writer
        assert pending is not None and writer is not None
        if pending.failed:
            self._pending = None  # no more appends: a resume then finds a gap (404), never a hole
            return
        now = asyncio.get_running_loop().time()
        if now >= self._expire_at:
            self._expire_at = now + self._config.ttl / 2
            pending.expire = True
        if data:
            pending.parts.append(data)
        pending.seq = last
        if end:
            pending.end = True
            self._ended = True
        writer.add(pending)

    async def finish(self) -> None:
        """After the app's run: stop watching, end the log if the body did not, and wait
        until the end is written (so a server's graceful shutdown does not lose it)."""
        self._cut = True
        if self._timer is not None:
            self._timer.cancel()
        watcher = self._watcher
        if watcher is not None and not watcher.done():
            watcher.cancel()
        pending = self._pending
        if pending is None or self._stamper is None:
            return
        if not self._ended:
            self._append(self._stamper.rest(), self._stamper.seq, end=True)
        done = pending.done
        if done is not None and not pending.failed:
            await done

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        state: dict[str, Any] = {
            "log": self._pending is not None,
            "gone": self._gone,
            "cut": self._cut,
        }
        return f"Tap({state})"
