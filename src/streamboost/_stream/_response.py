"""One HTTP request under StreamBoost: the app's run, its response start, how the stream ended.

``HTTPStream`` runs the app with the kernel's ``Sender.send`` as the app's send. At the
response start it reads what the body is and picks, once, how the body goes out (a sender of
``_senders``) and which kernel mode takes the usual chunks (never re-decided per chunk). It
follows the client (``http.disconnect``, a failed send) and settles the record once at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from types import CodeType

from .._types import Message, Receive, Scope, Send
from ._format import body_kind, without
from ._health import Health
from ._kernel import Receiving, Sender
from ._presets import VERCEL_HEADERS
from ._ready import on_asyncio
from ._record import StreamRecord, notify_ended, notify_started
from ._scanner import EventScanner
from ._senders import Coalesced, Direct, Gone
from ._sendfail import code_of, raised_in
from ._settings import ResponseSettings
from ._table import FORMAT_CHUNKS, FORMAT_LINES, FORMAT_SSE, MODE_BATCH, MODE_DIRECT, MODE_GENERAL


class HTTPStream:
    """Runs the app for one HTTP request and fills its ``StreamRecord``."""

    __slots__ = (
        "_coalesced",
        "_complete",
        "_gone",
        "_send",
        "_send_code",
        "_settings",
        "_task",
        "kernel",
        "record",
        "server_receive",
        "stall_end",
    )

    def __init__(
        self,
        settings: ResponseSettings,
        scope: Scope,
        receive: Receive,
        send: Send,
        *,
        kernel: Callable[[Callable[[Message], Awaitable[None]]], Sender] = Sender,
    ) -> None:
        self._settings = settings
        self.server_receive = receive
        self._send = send
        self.record = StreamRecord(scope, settings.clock())
        # A function's or bound method's code (a method forwards ``__code__``), else code_of.
        code = getattr(send, "__code__", None)
        self._send_code = code if type(code) is CodeType else code_of(send)
        # The app's send: the kernel's, which hands everything to ``_start`` until then.
        self.kernel = kernel(self._start)
        self._coalesced: Coalesced | None = None
        self._complete = False  # the body's last message went to the server
        self._gone = False  # the client went away before the body ended
        self._task: asyncio.Task[object] | None = None  # cancelled when the app stalls
        self.stall_end: bytes | None = None  # set when stalled: the body's last bytes
        config = settings.coalesce
        if config is not None and config.stall_timeout is not None and on_asyncio():
            self._task = asyncio.current_task()  # the task that runs the app

    async def run(self) -> None:
        """Run the app (``StreamBoost.__call__`` takes these steps itself: keep them alike)."""
        try:
            await self._settings.app(self.record.scope, self, self.kernel.send)
        except asyncio.CancelledError:
            if self.cancelled():
                raise
        except Exception as exc:
            await self.failed(exc)
            raise
        else:
            pending = self.returned()
            if pending is not None:
                await pending
        finally:
            if self.stall_end is not None:
                await self.end_stalled()
            self.ended()

    def cancelled(self) -> bool:
        """The app's run was cancelled: True to re-raise, False for our own cancel of a
        stalled app (the stream then ends normally)."""
        task = self._task
        if self.stall_end is None or task is None or task.uncancel():
            if not self._complete:
                self.record.client_left()
            return True
        return False

    async def failed(self, exc: Exception) -> None:
        """The app raised ``exc`` (re-raised by the caller after this)."""
        record = self.record
        coalescer = self._coalesced
        if coalescer is not None and isinstance(coalescer.error, OSError):
            record.client_left()  # a write failed or timed out
        elif raised_in(exc, self._send_code):
            self.client_failed()  # the server's send failed under the app's await
        else:
            record.app_failed()
        await self._deliver_buffered()

    def returned(self) -> Awaitable[None] | None:
        """The app returned; what is still to await (no coroutine for an uncoalesced one)."""
        if self.record.headers_at is None and not self._gone:
            # ...without a response: the server sends a 500. An app that returns because its
            # client left is not an error (exported as status 499).
            self.record.no_response()
        if self._coalesced is not None:
            return self._deliver_buffered()  # an app that returned without ending its body
        return None

    def ended(self) -> None:
        """The request is over: settle the record, tell the observers."""
        record = self.record
        coalesced = self._coalesced
        if coalesced is not None:  # None again after a disconnect closed it
            coalesced.coalescer.close()
            if coalesced.coalescer.error is not None:
                record.write_failed(coalesced.coalescer.error)
            coalesced.flusher = None  # it names the coalescer: a cycle, cut as the kernel's
            self._coalesced = None
        record.settle()
        notify_ended(record, self._settings.observers)
        # The kernel's fields name this stream: cut the cycle, so refcounting frees the request
        # (no GC pass walks it). A later message goes to the server as it is, as without us.
        kernel = self.kernel
        kernel.general = self._send
        kernel.use(MODE_GENERAL)
        kernel.owner = kernel.batch = kernel.done = None

    async def _deliver_buffered(self) -> None:
        """Write what the app sent but is still buffered, when its body did not end."""
        coalescer = self._coalesced
        if coalescer is not None and coalescer.error is None and not self._complete:
            with contextlib.suppress(Exception):  # best effort: the app's own error wins
                await coalescer.drain()

    def _stalled(self) -> None:
        """``stall_timeout`` passed without a body message: end the stream, cancel the app."""
        coalesced, task = self._coalesced, self._task
        if coalesced is None or task is None or self._complete or self.stall_end is not None:
            return
        config = self._settings.coalesce
        assert config is not None
        fmt = self.kernel.scan.fmt if self.kernel.scan is not None else 0
        ending = {FORMAT_SSE: config.stall_event, FORMAT_LINES: config.stall_event_ndjson}
        self.stall_end = ending.get(fmt, b"")
        self.record.stalled()
        task.cancel()

    async def end_stalled(self) -> None:
        """Write what was buffered, then the stall event as the body's last message."""
        coalescer = self._coalesced
        if coalescer is None or coalescer.error is not None or self._complete:
            return
        with contextlib.suppress(Exception):  # best effort: the client may be gone too
            await coalescer.drain()
            self.finishing()
            await coalescer.extra(self.stall_end or b"", False)

    def __call__(self) -> Awaitable[Message]:
        """The app's ``receive``: the stream itself, so no bound method is kept per stream."""
        return Receiving(self)

    def disconnected(self) -> None:
        """The app is about to receive ``http.disconnect``."""
        if not self._complete:
            self._client_gone()

    def _start(self, message: Message) -> Awaitable[None]:
        """The app's first message: read the response start, pick the body's sender."""
        if message["type"] != "http.response.start":
            return self._send(message)  # nothing to time before a response
        settings, record = self._settings, self.record
        status: int = message["status"]
        marked = settings.marked
        marks = VERCEL_HEADERS if marked is not None else ()
        kind = body_kind(message.get("headers", ()), settings.opt_out_header, marks)
        if kind.opt_out:
            message = {**message, "headers": without(message["headers"], settings.opt_out_header)}
        streaming = bool(kind.fmt and kind.scannable)  # compressed bytes cannot be scanned
        config = settings.coalesce
        coalesce = (
            streaming
            and config is not None
            and not kind.opt_out
            and kind.media in settings.content_types
            and status >= 200
            and status not in (204, 304)
            and record.method != "HEAD"
            and not self._gone
            and on_asyncio()
        )
        scanner = None
        # The stream format's rules, read here once for the whole body.
        preset = marked if marked is not None and kind.vercel else settings.preset
        fmt = kind.fmt
        if fmt == FORMAT_CHUNKS and preset.plain_as_lines:
            fmt = FORMAT_LINES
        if streaming:
            sse = fmt == FORMAT_SSE
            scanner = EventScanner(  # by position: a keyword call costs more, per request
                fmt,
                preset.critical if coalesce else None,  # critical
                preset.metadata,
                settings.is_metadata,
                preset.content,
                preset.openai_chat,
                preset.sse_content if sse else preset.line_content,  # protocol_content
                None if sse else preset.line_critical,  # protocol_critical
                record if settings.tokens else None,  # usage_of
            )
        kernel = self.kernel
        kernel.record = record
        kernel.scan = scanner
        kernel.server_send = self._send
        kernel.clock = settings.clock
        if self._gone:  # the client left before the response started
            self._go_around()
        elif coalesce:
            assert scanner is not None and config is not None
            merge = config.merge_openai and preset.merge and fmt == FORMAT_SSE
            sender = Coalesced(self, scanner, self._send, config, settings.clock, merge)
            self._coalesced = sender
            coalescer = sender.coalescer
            kernel.batch = coalescer
            kernel.done = coalescer.done
            kernel.general = None  # batch mode: the coalescer's own general (no bound method)
            kernel.use(MODE_BATCH)
            health = config.keepalive is not None or config.stall_timeout is not None
            # The kernel writes a sparse event itself (the app's message straight to the
            # server) only where that write needs no bound, no health timer watching it, and
            # an OSError from it can be recognised in run() by the server send's code.
            coalescer.write_now = (
                self._send_code is not None and config.send_timeout is None and not health
            )
            if health:
                stallable = self._task is not None  # stall_timeout can cancel the app
                Health(
                    coalescer, record, settings.clock, config, kind.fmt, stallable, self._stalled
                )
        else:
            # Without a Python send to find in a traceback (a server written in Rust), the
            # chunks keep a coroutine that catches the server's OSError itself.
            direct = self._send_code is not None and not self._gone
            forward = self._send if direct else self._forward
            kernel.general = Direct(self, scanner, forward, settings.clock).general
            kernel.owner = self  # direct mode: the kernel sends the empty last message itself
            kernel.use(MODE_DIRECT if direct and scanner is not None else MODE_GENERAL)
        record.began(status, streaming, settings.clock())
        notify_started(record, settings.observers)
        if coalesce or self._send_code is None or self._gone:
            return self._forward(message)
        return self._send(message)  # an OSError from it is recognised in run()

    async def _forward(self, message: Message) -> None:
        try:
            await self._send(message)
        except OSError:
            self.client_failed()
            raise

    def _client_gone(self) -> None:
        self._gone = True
        self.record.client_left()
        coalesced = self._coalesced
        if coalesced is not None:
            # Drop what is buffered; later sends go straight to the server.
            coalesced.coalescer.close()
            self._coalesced = None
        self._go_around()

    def _go_around(self) -> None:
        kernel = self.kernel
        kernel.general = Gone(self.record, self._send).general
        kernel.use(MODE_GENERAL)

    def finishing(self) -> None:
        self._complete = True
        for finishing in self._settings.finishing:
            finishing(self.record)  # an open server span ends with the last body message

    def client_failed(self) -> None:
        self._gone = True
        self.record.client_left()
        if self._coalesced is None:
            self._go_around()
