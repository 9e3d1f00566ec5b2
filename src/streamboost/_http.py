"""One HTTP request under StreamBoost: the send wrapper that fills the response's record.

Everything per request lives on an ``HTTPStream`` made by the middleware's ``__call__``; the
middleware object itself holds only configuration. How the app is run and how the stream
ended (disconnects, failed sends, the outcome) is ``_lifecycle.RequestLifecycle``.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING

from ._coalesce import Coalescer
from ._flusher import Ready, on_asyncio
from ._headers import body_kind, without
from ._lifecycle import RequestLifecycle
from ._native import NATIVE
from ._openai import merge_chunks
from ._sse import FORMAT_SSE, EventScanner
from ._timing import notify_started
from ._types import Message, Receive, Scope, Send

if TYPE_CHECKING:
    from ._middleware import StreamBoost


class HTTPStream(RequestLifecycle):
    """Runs the app for one HTTP request and fills its ``StreamRecord``."""

    __slots__ = ("_merge", "_started")

    def __init__(self, boost: StreamBoost, scope: Scope, receive: Receive, send: Send) -> None:
        super().__init__(boost, scope, receive, send)
        self._scanner: EventScanner | None = None
        self._merge = False

    def _send_slow(self, message: Message) -> Awaitable[None]:
        """The app's send: a plain function returning what the app awaits.

        ``send`` is this function, or, when ``_speedups`` is built, its C version that takes
        the usual chunks itself (the two marked below) and passes every other message here.

        A body chunk costs no coroutine of ours: without a coalescer it is counted and the
        server's own awaitable is returned; with one, a buffered chunk returns a future that
        is already done. The response start and the last body message are handled here too
        and, when nothing is coalesced, likewise go out as the server's own awaitable. The
        rest (trailers, pathsend, anything after a failure) goes through ``_send_any``.
        """
        if message["type"] != "http.response.body":
            if message["type"] == "http.response.start":
                self._begin(message)
                if self._direct:  # an OSError from the server's send is recognised in run()
                    return self._send(self._started)
                return self._forward(self._started)
            return self._send_any(message)
        if not message.get("more_body", False):
            if self._direct:  # the last body message, counted here and sent as the app sent it
                self._end_direct(message)
                return self._send(message)
            if self._coalescer is not None:
                return self._last_body(message)
            return self._send_any(message)
        coalescer = self._coalescer
        if coalescer is not None and coalescer.error is None:
            # The coalescing per-chunk path (in C too: buffer_known_event in _speedups.c).
            record = self.record
            record.chunks_in += 1
            body: bytes = message.get("body", b"")
            if body:
                if type(body) is not bytes:
                    body = bytes(body)  # starlette passes memoryview chunks through
                # Set together with the coalescer; a cast would cost a call per chunk.
                scanner: EventScanner = self._scanner  # type: ignore[assignment]
                # One whole, non-critical content event of the learned shape, found without
                # the scanner's critical-key regex (``known_event`` says why that is sound).
                if scanner.known_event(body):
                    record.events += 1
                    code = coalescer.offer(body, len(body), 1, 1, False)
                else:
                    complete = scanner.feed(body)
                    events = scanner.events
                    record.events += events
                    code = coalescer.offer(
                        body, complete, events, scanner.content, scanner.critical
                    )
                if code:
                    return coalescer.settle(code)
            return self._done
        if self._direct:
            # The per-chunk path without a coalescer: counts, one clock reading, the
            # scanner's fast path, and the chunk goes out as the app sent it (in C too, for a
            # known content event: send_known_content in _speedups.c).
            record = self.record
            record.chunks_in += 1
            record.writes += 1
            record.last_body_at = now = self._clock()
            chunk = message.get("body", b"")
            if chunk:
                if type(chunk) is not bytes:
                    chunk = bytes(chunk)  # starlette passes memoryview chunks through
                size = len(chunk)
                record.bytes_out += size
                scan = self._scanner
                if scan is None:
                    if record.first_byte_at is None:
                        record.first_byte_at = now
                elif scan.known_content(chunk):  # the usual token after the first
                    record.events += 1
                    record.content_events += 1
                    record.last_token_at = now
                else:
                    if record.first_byte_at is None:
                        record.first_byte_at = now
                    scan.feed(chunk)
                    record.events += scan.events
                    if scan.content:
                        record.content_events += scan.content
                        if record.first_token_at is None:
                            record.first_token_at = now
                        record.last_token_at = now
            return self._send(message)  # an OSError from it is recognised in run()
        return self._send_any(message)

    if not NATIVE:
        send = _send_slow  # the Python path: no call in between

    async def _send_any(self, message: Message) -> None:
        mtype = message["type"]
        if mtype == "http.response.body":
            if self._coalescer is None:
                await self._direct_body(message)
            else:  # the last body message, or any after the stream failed
                await self._last_body(message)
        else:
            # pathsend, zerocopysend, trailers, anything newer: never overtake buffered bytes.
            if self._coalescer is not None and not self._gone:
                await self._coalescer.drain()
            await self._send(message)

    def _begin(self, message: Message) -> None:
        """Read the response start and notify the observers; ``_started`` is what to send."""
        boost = self._boost
        record = self.record
        record.status = status = message["status"]
        kind = body_kind(message.get("headers", ()), boost.opt_out_header)
        opt_out = kind.opt_out
        if opt_out:
            message = {**message, "headers": without(message["headers"], boost.opt_out_header)}
        fmt = kind.fmt
        # A known stream format without a length; compressed bytes cannot be scanned.
        if fmt and kind.scannable:
            record.streaming = True
            config = boost.coalesce
            if (
                config is not None
                and not opt_out
                and kind.media in config.content_types
                and status >= 200
                and status not in (204, 304)
                and record.method != "HEAD"
                and on_asyncio()
            ):
                self._coalescer = coalescer = Coalescer(self._write, config)
                # The coalescer's loop: each get_running_loop() is a getpid() system call.
                self._done = Ready(coalescer.loop)  # returned for every buffered chunk
                self._merge = config.merge_openai and fmt == FORMAT_SSE
            critical = boost.critical_names if self._coalescer is not None else None
            self._scanner = EventScanner(
                fmt, critical=critical, metadata=boost.metadata_names, is_metadata=boost.is_metadata
            )
        # Without a Python send to find in a traceback (a server written in Rust), the
        # chunks keep a coroutine that catches the server's OSError itself.
        self._direct = self._coalescer is None and not self._gone and self._send_code is not None
        record.headers_at = self._clock()
        notify_started(record, boost.observers)
        self._started = message

    async def _direct_body(self, message: Message) -> None:
        if self._gone:
            self.record.chunks_in += 1
            await self._send(message)
            return
        self._end_direct(message)
        await self._forward(message)

    def _end_direct(self, message: Message) -> None:
        """Count a body message that goes out without a coalescer: the last one, or any
        under a server without a Python send."""
        record = self.record
        record.chunks_in += 1
        body: bytes = message.get("body", b"")
        content = 0
        scanner = self._scanner
        if scanner is not None and body:
            scanner.feed(bytes(body) if type(body) is not bytes else body)
            record.events += scanner.events
            content = scanner.content
        more: bool = message.get("more_body", False)
        if not more and scanner is not None and scanner.pending:
            content += self._end_scan(scanner)
        record.wrote(len(body), content, self._clock())
        if not more:
            self._finishing()

    def _last_body(self, message: Message) -> Awaitable[None]:
        """The body's last message (or any after the stream failed) through the coalescer."""
        self.record.chunks_in += 1
        coalescer = self._coalescer
        assert coalescer is not None
        if coalescer.error is not None:
            raise coalescer.error  # the client is gone (a write failed, or http.disconnect)
        body: bytes = bytes(message.get("body", b""))
        scanner = self._scanner
        assert scanner is not None
        content = 0
        if body:
            scanner.feed(body)
            self.record.events += scanner.events
            content = scanner.content
        if scanner.pending:
            content += self._end_scan(scanner)
        return coalescer.finish(body, content)

    def _end_scan(self, scanner: EventScanner) -> int:
        """Count an event the body left unterminated; return 1 if it carries content."""
        scanner.end()
        self.record.events += scanner.events
        return scanner.content

    async def _write(self, parts: list[bytes], content: int, more: bool) -> None:
        """The coalescer's write: one body message to the server, stamped before it goes."""
        body = parts[0] if len(parts) == 1 else b"".join(parts)
        if self._merge and body.count(b"\n\n") > 1:
            body = merge_chunks(body)
        record = self.record
        if content and record.first_token_at is None and self._coalescer is not None:
            self._coalescer.eager = False  # the first token is out: batching may start
        record.wrote(len(body), content, self._clock())
        if not more:
            self._finishing()
        try:  # ``_forward`` inline: one coroutine less per write
            await self._send({"type": "http.response.body", "body": body, "more_body": more})
        except OSError:
            self._client_failed()
            raise

    async def _forward(self, message: Message) -> None:
        try:
            await self._send(message)
        except OSError:
            self._client_failed()
            raise
