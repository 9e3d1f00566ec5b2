"""One HTTP request's lifecycle under StreamBoost: the app's run and how the stream ended.

``RequestLifecycle`` runs the app, follows the client (``http.disconnect``, a failed send)
and the body's end, settles the record's outcome and notifies the observers once at the end.
``_http.HTTPStream`` extends it with the send wrapper that fills the record per chunk.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from ._coalesce import Coalescer
from ._native import StreamBase
from ._sendfail import code_of, raised_in
from ._timing import (
    OUTCOME_CLIENT_DISCONNECTED,
    OUTCOME_COMPLETED,
    OUTCOME_ERROR,
    OUTCOME_NO_TOKEN,
    StreamRecord,
    notify_ended,
)
from ._types import Message, Receive, Scope, Send

if TYPE_CHECKING:
    from ._middleware import StreamBoost


class RequestLifecycle(StreamBase):
    """Runs the app for one HTTP request and settles its ``StreamRecord``'s outcome."""

    # And StreamBase's: record, _scanner, _coalescer, _done, _send, _clock, _direct (C when
    # built, with ``send``: see ``_native``).
    __slots__ = ("_boost", "_complete", "_gone", "_receive", "_send_code")

    def __init__(self, boost: StreamBoost, scope: Scope, receive: Receive, send: Send) -> None:
        self._boost = boost
        self._receive = receive
        self._send = send
        self._clock = clock = boost.clock
        self.record = StreamRecord(scope, clock())
        # Set at the response start when nothing is coalesced: body chunks then take the
        # inline path at the top of ``send`` and go to the server's send untouched.
        self._direct = False
        self._send_code = code_of(send)
        self._coalescer: Coalescer | None = None
        self._complete = False  # the body's last message went to the server
        self._gone = False  # the client went away before the body ended

    async def run(self) -> None:
        record = self.record
        try:
            await self._boost.app(record.scope, self.receive, self.send)
        except asyncio.CancelledError:
            if not self._complete:
                record.outcome = OUTCOME_CLIENT_DISCONNECTED
            raise
        except Exception as exc:
            coalescer = self._coalescer
            if coalescer is not None and isinstance(coalescer.error, OSError):
                record.outcome = OUTCOME_CLIENT_DISCONNECTED  # a write failed or timed out
            elif self._direct and raised_in(exc, self._send_code):
                self._client_failed()  # the server's send failed under the app's await
            elif record.outcome != OUTCOME_CLIENT_DISCONNECTED:
                record.outcome = OUTCOME_ERROR
                if record.headers_at is None:
                    record.status = 500  # what the server answers for an app that failed
            await self._deliver_buffered()
            raise
        else:
            await self._deliver_buffered()  # an app that returned without ending its body
            if record.headers_at is None and not self._gone:
                # ...or without a response: the server sends a 500. An app that returns
                # because its client left is not an error (exported as status 499).
                record.status = 500
                record.outcome = OUTCOME_ERROR
        finally:
            coalescer = self._coalescer
            if coalescer is not None:  # None again after a disconnect closed it
                coalescer.close()
                if record.outcome == OUTCOME_COMPLETED and coalescer.error is not None:
                    failed = isinstance(coalescer.error, OSError)
                    record.outcome = OUTCOME_CLIENT_DISCONNECTED if failed else OUTCOME_ERROR
            if (
                record.outcome == OUTCOME_COMPLETED
                and record.streaming
                and record.content_events == 0
            ):
                record.outcome = OUTCOME_NO_TOKEN
            notify_ended(record, self._boost.observers)

    async def _deliver_buffered(self) -> None:
        """Write what the app sent but is still buffered, when its body did not end."""
        coalescer = self._coalescer
        if coalescer is not None and coalescer.error is None and not self._complete:
            with contextlib.suppress(Exception):  # best effort: the app's own error wins
                await coalescer.drain()

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.disconnect" and not self._complete:
            self._client_gone()
        return message

    def _client_gone(self) -> None:
        self._gone = True
        self._direct = False
        self.record.outcome = OUTCOME_CLIENT_DISCONNECTED
        coalescer = self._coalescer
        if coalescer is not None:
            # Drop what is buffered; later sends go straight to the server, which treats them
            # as it would without StreamBoost (ignores them, or raises OSError).
            coalescer.close()
            self._coalescer = None

    def _finishing(self) -> None:
        self._complete = True
        for finishing in self._boost.finishing:
            finishing(self.record)  # an open server span ends with the last body message

    def _client_failed(self) -> None:
        self._gone = True
        self._direct = False
        self.record.outcome = OUTCOME_CLIENT_DISCONNECTED
