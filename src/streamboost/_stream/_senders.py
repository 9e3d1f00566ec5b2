"""The three ways a response's body goes out, one picked at its start (``HTTPStream``).

- ``Direct``: nothing is coalesced; each message is counted (and scanned when the body is a
  stream we read) and handed to the server as the app sent it. Non-stream responses take it
  too, without a scanner.
- ``Coalesced``: chunks go through the coalescer's rules, which write them in batches; it *is*
  the coalescer (a ``CoalescerCore`` subclass), so a coalesced stream holds one object here.
- ``Gone``: after the client went away, messages go to the server untouched, which treats them
  as it would without StreamBoost (ignores them, or raises ``OSError``).

Each sender's ``general`` takes every message the kernel's ``Sender`` did not take itself;
their rules for a one-event chunk are the kernel's (``_kernel``), called, not rewritten.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from .._config import CoalesceConfig
from .._types import Message, Send
from ._coalescer import CoalescerCore
from ._openai import merge_chunks
from ._record import StreamRecord
from ._scanner import EventScanner
from ._table import CONTENT_MASK, EVENTS_SHIFT


class Owner(Protocol):
    """What a sender calls back on the response that picked it."""

    record: StreamRecord

    def finishing(self) -> None:
        """The body's last message is about to go out."""

    def client_failed(self) -> None:
        """The server's send raised ``OSError``: the client is gone."""


class Direct:
    """Counts each message and sends it as it is; ``forward`` is how it reaches the server
    (the server's own send, or a coroutine that recognises its ``OSError``)."""

    __slots__ = ("_clock", "_forward", "_owner", "_scanner")

    def __init__(
        self,
        owner: Owner,
        scanner: EventScanner | None,
        forward: Callable[[Message], Awaitable[None]],
        clock: Callable[[], float],
    ) -> None:
        self._owner = owner
        self._scanner = scanner
        self._forward = forward
        self._clock = clock

    def general(self, message: Message) -> Awaitable[None]:
        if message["type"] != "http.response.body":
            return self._forward(message)  # trailers, pathsend, anything newer
        body = message.get("body", b"")
        if type(body) is not bytes:
            body = bytes(body)  # starlette passes memoryview chunks through
        more: bool = message.get("more_body", False)
        events = content = 0
        scanner = self._scanner
        if scanner is not None:
            if body:
                scanner.feed(body)
                events, content = scanner.events, scanner.content
            if not more and scanner.pending:
                scanner.end()
                events += scanner.events
                content += scanner.content
        owner = self._owner
        owner.record.sent(len(body), events, content, self._clock())
        if not more:
            owner.finishing()
        return self._forward(message)


class Coalesced(CoalescerCore):
    """Offers each chunk to its own coalescing rules; writes the batches (``put``)."""

    __slots__ = ("_clock", "_merge", "_owner", "_scanner", "_send")

    def __init__(
        self,
        owner: Owner,
        scanner: EventScanner,
        send: Send,
        config: CoalesceConfig,
        clock: Callable[[], float],
        merge: bool,
    ) -> None:
        super().__init__(config)
        self._owner = owner
        self._scanner = scanner
        self._send = send
        self._clock = clock
        self._merge = merge

    @property
    def coalescer(self) -> Coalesced:
        """The coalescer: this object (kept for the response's and the tests' reads)."""
        return self

    def general(self, message: Message) -> Awaitable[None]:
        if message["type"] != "http.response.body":
            return self._after_drain(message)
        coalescer = self
        if coalescer.error is not None:
            self._owner.record.took(0)
            raise coalescer.error  # the client is gone (a write failed, or http.disconnect)
        body = message.get("body", b"")
        if type(body) is not bytes:
            body = bytes(body)  # starlette passes memoryview chunks through
        scanner = self._scanner
        record = self._owner.record
        if not message.get("more_body", False):
            if (
                not body
                and coalescer.write_now
                and coalescer.ready is None
                and coalescer.partial is None
                and not (coalescer.inflight or coalescer.ready_content)
                and not scanner.pending
                and (coalescer.flusher is None or coalescer.flusher.idle())
            ):
                # The usual end, nothing buffered: the empty last message goes as it is, as
                # in direct mode (write_now: failed() recognises an OSError from this send).
                now = self._clock()
                record.took(0)
                record.produced(0, now)
                record.wrote(0, 0, now)
                self._owner.finishing()
                return self._send(message)
            events = content = 0
            if body:
                scanner.feed(body)
                events, content = scanner.events, scanner.content
            if scanner.pending:
                scanner.end()
                events += scanner.events
                content += scanner.content
            record.took(events)
            record.produced(content, self._clock())
            return coalescer.finish(body, content)
        if not body:
            record.took(0)
            record.produced(0, self._clock())
            return coalescer.done
        kind = scanner.classify(body)
        if kind:  # whole events: the kernel's answer, as on its own path
            events, content = kind >> EVENTS_SHIFT, kind & CONTENT_MASK
            record.took(events)
            record.produced(content, self._clock())
            code = coalescer.offer(body, len(body), events, content, False)
        else:
            complete = scanner.feed(body)
            record.took(scanner.events)
            record.produced(scanner.content, self._clock())
            code = coalescer.offer(
                body, complete, scanner.events, scanner.content, scanner.critical
            )
        return coalescer.settle(code) if code else coalescer.done

    async def _after_drain(self, message: Message) -> None:
        """A message that must not overtake buffered bytes (trailers, pathsend...)."""
        await self.drain()
        await self._send(message)

    async def put(self, parts: list[bytes], content: int, more: bool) -> None:
        """The coalescer's write: one body message to the server, stamped before it goes."""
        body = parts[0] if len(parts) == 1 else b"".join(parts)
        if self._merge and body.count(b"\n\n") > 1:
            body = merge_chunks(body)
        owner = self._owner
        record = owner.record
        if content and record.first_token_at is None:
            self.eager = False  # the first token is out: batching may start
        record.wrote(len(body), content, self._clock())
        if not more:
            owner.finishing()
        try:
            await self._send({"type": "http.response.body", "body": body, "more_body": more})
        except OSError:
            owner.client_failed()
            raise

    async def put_raw(self, data: bytes, more: bool) -> None:
        """The coalescer's uncounted write (a keepalive ping, the stall event)."""
        try:
            await self._send({"type": "http.response.body", "body": data, "more_body": more})
        except OSError:
            self._owner.client_failed()
            raise


class Gone:
    """After the client went away: each message straight to the server, counted."""

    __slots__ = ("_record", "_send")

    def __init__(self, record: StreamRecord, send: Send) -> None:
        self._record = record
        self._send = send

    def general(self, message: Message) -> Awaitable[None]:
        if message["type"] == "http.response.body":
            self._record.took(0)
        return self._send(message)
