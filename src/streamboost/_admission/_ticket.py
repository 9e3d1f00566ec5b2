"""``Admission`` (what StreamBoost holds) and ``Ticket`` (one HTTP request's way through it).

A request the limits admit at once costs a route match, a few counter updates and one
histogram bucket; the app then runs as without admission. A request that waits is watched
for its client leaving: one task reads ``receive`` while it is queued (what it reads, the
request body included, is handed to the app later in order, up to ``_WATCH_BYTES``), and a
disconnect ends its wait. A rejected request gets ``status`` with ``Retry-After`` and a JSON
error body before the app runs; it is not a response of the app, so the stream families do
not count it (``streamboost_admission_rejected_total`` does).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Final

import orjson
from prometheus_client import CollectorRegistry

from .._stream import PhaseTiming, StreamRecord
from .._types import Message, Receive, Scope, Send
from . import _metrics
from ._config import AdmissionConfig
from ._gate import Gate
from ._place import ADMITTED, DISPLACED, GONE, QUEUE_FULL, TIMEOUT, UNAVAILABLE, WAITING, Place

QUEUE_PHASE: Final = "queue"
_WATCH_BYTES: Final = 1 << 20  # request body read ahead while queued, at most
_MESSAGES: Final = {
    QUEUE_FULL: "the server is at its limit of concurrent requests and its queue is full",
    DISPLACED: "the server's queue is full and a request of higher priority took this place",
    TIMEOUT: "the server is at its limit of concurrent requests; waited too long for a place",
    UNAVAILABLE: "the server cannot check its shared limit of concurrent requests",
}


def _response(status: int, retry_after: int, reason: str) -> tuple[Message, Message]:
    body = orjson.dumps(
        {"error": {"message": _MESSAGES[reason], "type": "server_busy", "code": reason}}
    )
    start: Message = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"retry-after", str(retry_after).encode()),
        ],
    }
    return start, {"type": "http.response.body", "body": body}


class Admission:
    """The admission of one StreamBoost: its limits in this process and its metrics."""

    def __init__(
        self, config: AdmissionConfig, *, metrics: bool, registry: CollectorRegistry | None
    ) -> None:
        self.config = config
        self.stats = _metrics.AdmissionStats(config.route_limits or {})
        self.gate = Gate(config, self.stats)
        self.exempt = config.exempt
        self.responses = {
            reason: _response(
                503 if reason == UNAVAILABLE else config.status, config.retry_after, reason
            )
            for reason in _MESSAGES
        }
        if metrics:
            _metrics.export(self.gate, registry)

    def ticket(self, scope: Scope, receive: Receive, send: Send) -> Ticket | None:
        """The request's ticket, or None when ``exempt`` says it skips admission."""
        exempt = self.exempt
        if exempt is not None and exempt(scope):
            return None
        return Ticket(self, scope, receive, send)


class Ticket:
    """One request: admitted at once, after a wait, or rejected; ``receive`` for the app."""

    __slots__ = ("_admission", "_buffer", "_receive", "_scope", "_send", "_watcher")

    def __init__(self, admission: Admission, scope: Scope, receive: Receive, send: Send) -> None:
        self._admission = admission
        self._scope = scope
        self._receive = receive
        self._send = send
        self._buffer: collections.deque[Message] | None = None
        self._watcher: asyncio.Task[None] | None = None

    def receive(self) -> Awaitable[Message]:
        """The app's ``receive``: what was read while queued first, then the server's."""
        if self._buffer is None:
            return self._receive()
        return self._replay()

    async def _replay(self) -> Message:
        buffer = self._buffer
        assert buffer is not None
        while True:
            if buffer:
                return buffer.popleft()
            watcher = self._watcher
            if watcher is None:
                return await self._receive()
            if watcher.done():
                self._watcher = None
                continue
            await asyncio.shield(watcher)  # its receive() is in flight: take what it reads

    async def run(self, record: StreamRecord, run: Callable[[], Awaitable[None]]) -> None:
        """Admit the request (``run()`` the app, then free its place) or answer for it."""
        admission = self._admission
        gate = admission.gate
        route = gate.matcher.match(self._scope) if gate.route_limits else None
        place = gate.enter_now(route)
        if place is not None:  # admitted at once: the usual case, nothing awaited
            admission.stats.admitted_at_once(route)
            try:
                await run()
            finally:
                gate.leave(place)
            return
        arrived = time.perf_counter()
        try:
            if asyncio._get_running_loop() is None:
                place = gate.enter_without_asyncio(route)
                waited = 0.0
            else:
                place = await gate.wait(self._scope, route, arrived, self._queued)
                waited = time.perf_counter() - arrived
                timing = PhaseTiming(QUEUE_PHASE, arrived, arrived + waited, None)
                if record.phases is None:
                    record.phases = [timing]
                else:
                    record.phases.append(timing)
            state = place.state
            if state == ADMITTED:
                admission.stats.waited(route, ADMITTED, waited)
                try:
                    await run()
                finally:
                    gate.leave(place)
            elif state == GONE:
                admission.stats.waited(route, "abandoned", waited)
            else:
                admission.stats.reject(route, state, waited)
                start, body = admission.responses[state]
                with contextlib.suppress(OSError):  # the client left meanwhile
                    await self._send(start)
                    await self._send(body)
        finally:
            watcher = self._watcher
            if watcher is not None and not watcher.done():
                watcher.cancel()

    def _queued(self, place: Place) -> None:
        self._buffer = collections.deque()
        self._watcher = asyncio.get_running_loop().create_task(self._watch(place))

    async def _watch(self, place: Place) -> None:
        buffer = self._buffer
        assert buffer is not None
        size = 0
        try:
            while place.state == WAITING and size <= _WATCH_BYTES:
                message = await self._receive()
                buffer.append(message)
                if message["type"] == "http.disconnect":
                    self._admission.gate.settle(place, GONE)
                    return
                size += len(message.get("body", b""))
        except Exception:
            return  # the app's own receive() meets the error again
