"""One WebSocket connection: counted per message, observed once, batched per route.

``WebSockets`` is what ``StreamBoost`` hands every ``websocket`` scope. Per connection it
makes a ``WebSocketRecord`` of plain numbers and runs the app with a ``receive`` and a
``send`` that only count (and read the clock for the first message sent); the observers get
the record at the accept (``connection_started``: the active gauge) and once when the
connection is over (``connection_ended``: everything else). The route template is resolved
at the accept (the app has routed by then) with the same resolver as HTTP, so ``route=``
applies; it also decides whether the connection is batched (``CoalesceConfig.websocket`` and
``websocket_exclude``, or the ``opt_out_header`` on the accept).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, Protocol

from ._config import CoalesceConfig
from ._export._route import AppRoute, RouteResolver
from ._stream import Clock, on_asyncio
from ._types import ASGIApp, Message, Receive, Scope, Send
from ._websocket import WebSocketBatcher

CLOSE_REJECTED: Final = "rejected"
"""The ``code`` of a connection the app never accepted (closed, denied or returned first)."""
CLOSE_APP_ERROR: Final = "1011"
"""The ``code`` of a connection whose app raised before a close either way (RFC 6455's
internal error; what the client sees is the server's choice)."""
CLOSE_NO_FRAME: Final = "1006"
"""The ``code`` of an accepted connection whose app returned without a close either way."""
CLOSE_OTHER: Final = "other"
"""The ``code`` of a close code outside 1000..4999 (not a valid close code)."""


class WebSocketRecord:
    """One connection's numbers; times are readings of the middleware's clock."""

    __slots__ = (
        "accepted_at",
        "close_code",
        "connected_at",
        "ended_at",
        "first_sent_at",
        "received",
        "route",
        "scope",
        "sent",
        "writes",
    )

    def __init__(self, scope: Scope, connected_at: float) -> None:
        self.scope = scope
        self.connected_at = connected_at
        self.accepted_at: float | None = None
        self.first_sent_at: float | None = None
        self.ended_at: float | None = None
        self.received = 0  # websocket.receive messages from the client
        self.sent = 0  # websocket.send messages from the app
        self.writes = 0  # websocket.send messages to the server (a batch array is one)
        self.close_code: str | None = None
        self.route: str = ""  # the route label, resolved at the accept (or at the end)

    @property
    def duration(self) -> float:
        """Connect to the end (the first close either way, else the app's return)."""
        end = self.ended_at
        return (self.connected_at if end is None else end) - self.connected_at


class WebSocketObserver(Protocol):
    def connection_started(self, record: WebSocketRecord) -> None:
        """Called once, when the app accepts (``record.route`` is set)."""

    def connection_ended(self, record: WebSocketRecord) -> None:
        """Called once, when the app has returned (or raised)."""


def close_label(code: object) -> str:
    """The ``code`` label of a close code: the number for 1000..4999, else ``"other"``."""
    if isinstance(code, int) and 1000 <= code <= 4999:
        return str(code)
    return CLOSE_OTHER


def close_class(code: str) -> str:
    """The overflow ``code`` label: ``"1xxx"``, ``"3xxx"``, ``"4xxx"``, or the word itself."""
    return f"{code[0]}xxx" if code.isdigit() else code


class WebSockets:
    """Runs every WebSocket connection: counted when observed, batched when configured."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        batching: CoalesceConfig | None,
        observers: Sequence[WebSocketObserver],
        route: Callable[[dict[str, Any]], str | None] | None,
        clock: Clock,
        opt_out_header: bytes,
    ) -> None:
        self.app = app
        self.batching = batching if batching is not None and batching.websocket else None
        self.unbatched = frozenset(() if self.batching is None else self.batching.websocket_exclude)
        self.observers = tuple(observers)
        self.resolve: Callable[[dict[str, Any]], str] = (
            RouteResolver() if route is None else AppRoute(route)
        )
        self.clock = clock
        self.opt_out_header = opt_out_header

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.observers and (self.batching is None or not on_asyncio()):
            await self.app(scope, receive, send)  # nothing to do: untouched
            return
        await WebSocketConnection(self, scope, receive, send).run()


class WebSocketConnection:
    """The per-connection state: its record, its batcher (if any), the server's callables."""

    __slots__ = ("_batcher", "_clock", "_owner", "_receive", "_send", "record")

    def __init__(self, owner: WebSockets, scope: Scope, receive: Receive, send: Send) -> None:
        self._owner = owner
        self._clock = owner.clock
        self._receive = receive
        self._send = send
        self._batcher: WebSocketBatcher | None = None
        self.record = WebSocketRecord(scope, owner.clock())

    async def run(self) -> None:
        owner, record = self._owner, self.record
        completed = False
        try:
            await owner.app(record.scope, self.receive, self.send)
            completed = True
        finally:
            try:
                if self._batcher is not None:
                    await self._batcher.finish(completed)
            finally:
                if record.ended_at is None:
                    record.ended_at = self._clock()
                if record.close_code is None:
                    if not completed:
                        record.close_code = CLOSE_APP_ERROR
                    elif record.accepted_at is None:
                        record.close_code = CLOSE_REJECTED
                    else:
                        record.close_code = CLOSE_NO_FRAME
                if record.accepted_at is None and owner.observers:
                    record.route = owner.resolve(record.scope)
                for observer in owner.observers:
                    observer.connection_ended(record)

    async def receive(self) -> Message:
        message = await self._receive()
        kind = message["type"]
        if kind == "websocket.receive":
            self.record.received += 1
        elif kind == "websocket.disconnect":
            record = self.record
            if record.close_code is None:
                record.close_code = close_label(message.get("code", 1005))
                record.ended_at = self._clock()
        return message

    def send(self, message: Message) -> Awaitable[None]:
        """Counts; a plain function, so an unbatched message costs no coroutine of ours."""
        record = self.record
        if message["type"] == "websocket.send":
            record.sent += 1
            batcher = self._batcher
            if batcher is not None:
                return batcher.send(message)
            record.writes += 1
            if record.first_sent_at is None:
                record.first_sent_at = self._clock()
            return self._send(message)
        return self._control(message)

    def _write(self, message: Message) -> Awaitable[None]:
        """The batcher's way to the server: arrays and what it passes through."""
        if message["type"] == "websocket.send":
            record = self.record
            record.writes += 1
            if record.first_sent_at is None:
                record.first_sent_at = self._clock()
        return self._send(message)

    def _control(self, message: Message) -> Awaitable[None]:
        kind = message["type"]
        record = self.record
        if kind == "websocket.accept" and record.accepted_at is None:
            message = self._accepted(message)
        elif record.close_code is None and (
            kind == "websocket.close" or kind == "websocket.http.response.start"
        ):
            accepted = record.accepted_at is not None
            code = message.get("code", 1000) if kind == "websocket.close" else None
            record.close_code = close_label(code) if accepted else CLOSE_REJECTED
            record.ended_at = self._clock()
        batcher = self._batcher
        if batcher is not None:  # drains what waits before the close goes out
            return batcher.send(message)
        return self._send(message)

    def _accepted(self, message: Message) -> Message:
        owner, record = self._owner, self.record
        record.accepted_at = self._clock()
        if owner.observers or owner.unbatched:
            record.route = owner.resolve(record.scope)
        batching = owner.batching
        headers = message.get("headers")
        if headers:
            header = owner.opt_out_header
            kept = [(name, value) for name, value in headers if name.lower() != header]
            if len(kept) != len(headers):
                message = {**message, "headers": kept}  # the app's dict stays as it was
                batching = None
        if batching is not None and record.route not in owner.unbatched and on_asyncio():
            self._batcher = WebSocketBatcher(batching, self._write)
        for observer in owner.observers:
            observer.connection_started(record)
        return message
