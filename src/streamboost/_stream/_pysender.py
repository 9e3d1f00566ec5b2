"""The kernel's sender in Python: the twin of ``_speedups.Sender`` (see ``_kernel``).

``_kernel`` picks this class or the C one; it lives in its own module only to keep ``_kernel``
short. The base classes it drives are ``_kernel``'s, seen through the protocols below (so
neither module imports the other's).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from .._types import Message
from ._table import CONTENT_MASK, EVENTS_SHIFT, FULL, MODE_BATCH, MODE_DIRECT, SENDER_FIELDS, WAKE


class PyRecordBase(Protocol):
    """What the sender changes of ``_kernel.RecordBase`` (a protocol: no import cycle)."""

    first_token_at: float | None
    last_body_at: float | None

    def took(self, events: int) -> None: ...

    def produced(self, content: int, now: float) -> None: ...

    def wrote(self, size: int, content: int, now: float) -> None: ...

    def sent(self, size: int, events: int, content: int, now: float) -> None: ...


class PyScanBase(Protocol):
    fmt: int
    pending: int
    events: int
    content: int

    def classify(self, body: bytes) -> int: ...

    def feed_fast(self, data: bytes) -> int: ...


class Finishing(Protocol):
    """The response a direct sender tells that the body's last message goes out."""

    def finishing(self) -> None: ...


class PyLagBase(Protocol):
    late: bool


class PyBatchBase(Protocol):
    """What the sender reads and calls of ``_kernel.BatchBase`` (and its subclass)."""

    ready: list[bytes] | None
    pending_bytes: int
    inflight: int
    wanted: bool
    error: BaseException | None
    loop_clock: Any
    eager: bool
    last_event: float
    near: bool
    last_write: float
    quiet_gap: float
    window: float
    due: float
    write_now: bool
    lag: PyLagBase | None

    def add(self, body: bytes, size: int, events: int, content: int, critical: bool) -> int: ...

    def wake(self, late: bool = False) -> None: ...

    def room(self) -> Awaitable[None]: ...


class PySender:
    """The app's send for one response: the kernel's chunks, then ``general`` for the rest."""

    __slots__ = (*SENDER_FIELDS, "_chunk")
    _chunk: Callable[[Message], Awaitable[None]]

    record: PyRecordBase
    scan: PyScanBase | None
    batch: PyBatchBase | None
    server_send: Callable[[Message], Awaitable[None]]
    # None in batch mode: the batch's own ``general`` method (no bound method per stream).
    general: Callable[[Message], Awaitable[None]] | None
    done: Awaitable[None] | None
    clock: Callable[[], float]
    # Direct mode: the response, told when the body's last message goes out (``finishing``).
    owner: Finishing | None

    def __init__(self, general: Callable[[Message], Awaitable[None]]) -> None:
        self.general = self._chunk = general
        self.scan = self.batch = self.done = self.owner = None

    def use(self, mode: int) -> None:
        """Switch, once at the response start, to ``MODE_DIRECT`` or ``MODE_BATCH`` (the
        fields that mode reads are set first)."""
        if mode == MODE_DIRECT:
            self._chunk = self._direct
        elif mode == MODE_BATCH:
            self._chunk = self._batch
        else:
            self._chunk = self.general  # type: ignore[assignment]

    def send(self, message: Message) -> Awaitable[None]:
        return self._chunk(message)

    def _direct(self, message: Message) -> Awaitable[None]:
        if message["type"] == "http.response.body":
            more = message.get("more_body", False)
            body = message.get("body", b"")
            if more is True:
                if type(body) is bytes and body:
                    scan: PyScanBase = self.scan  # type: ignore[assignment]
                    kind = scan.classify(body)
                    if kind:
                        self.record.sent(
                            len(body), kind >> EVENTS_SHIFT, kind & CONTENT_MASK, self.clock()
                        )
                        return self.server_send(message)
                    # An event cut by the chunk (a relay's read): fed here if sure.
                    if scan.feed_fast(body) >= 0:
                        self.record.sent(len(body), scan.events, scan.content, self.clock())
                        return self.server_send(message)
            elif (
                more is False
                and type(body) is bytes
                and not body
                and self.owner is not None
                and self.scan is not None
                and not self.scan.pending
            ):
                # The body's last message, empty: what the general send does with it.
                self.record.sent(0, 0, 0, self.clock())
                self.owner.finishing()
                return self.server_send(message)
        return self.general(message)  # type: ignore[misc]

    def _batch(self, message: Message) -> Awaitable[None]:
        if message["type"] == "http.response.body" and message.get("more_body") is True:
            body = message.get("body")
            batch: PyBatchBase = self.batch  # type: ignore[assignment]
            if (
                type(body) is bytes
                and body
                and not batch.ready
                and not batch.pending_bytes
                and batch.error is None
                and batch.write_now
                and not batch.inflight
            ):
                return self._now(batch, body, message)
            if (
                type(body) is bytes
                and body
                and batch.ready
                and not batch.pending_bytes
                and batch.error is None
            ):
                kind = self.scan.classify(body)  # type: ignore[union-attr]
                if kind:
                    record = self.record
                    events, content = kind >> EVENTS_SHIFT, kind & CONTENT_MASK
                    record.took(events)
                    record.produced(content, at := self.clock())
                    code = batch.add(body, len(body), events, content, False)
                    # Due a window after its first byte, which came after the last write: the
                    # loop's time is read only past a window since that write (C: since_write).
                    last = record.last_body_at
                    if (
                        not code
                        and not batch.wanted
                        and (type(last) is not float or at - last >= batch.window)
                        and batch.loop_clock() >= batch.due
                    ):
                        batch.wake(True)  # due already: the timer is late (a loaded loop)
                    if code & WAKE:
                        batch.wake()
                    if code & FULL:
                        return batch.room()
                    return self.done  # type: ignore[return-value]
        return self._batch_general(message)

    def _batch_general(self, message: Message) -> Awaitable[None]:
        if self.general is None and self.batch is not None:
            return self.batch.general(message)  # type: ignore[attr-defined, no-any-return]
        return self.general(message)  # type: ignore[misc]

    def _now(self, batch: PyBatchBase, body: bytes, message: Message) -> Awaitable[None]:
        """No batch waiting: the Coalescer's write-at-once rule (eager until the first
        token, the events ``quiet_gap`` or more after the last chunk that ended one or after a
        chunk that was (``near``: one short gap is jitter), a window since the last write, or
        a lagging loop) for whole events, taken here: the app's own message goes to the
        server. A chunk of whole events ends one, so it is always a gap observation; one that
        ends none is ``offer``'s (the general send), which leaves the gap alone."""
        kind = self.scan.classify(body)  # type: ignore[union-attr]
        if not kind:
            return self._batch_general(message)
        now: float = batch.loop_clock()
        short = now - batch.last_event < batch.quiet_gap  # one short gap is jitter; two: a burst
        quiet = not (short and batch.near)
        batch.last_event, batch.near = now, short or batch.eager
        lag = batch.lag
        if not (
            batch.eager
            or quiet
            or now - batch.last_write >= batch.window
            or (lag is not None and lag.late)
        ):
            return self._batch_general(message)  # buffers: the Coalescer arms its timer
        # Two clock readings, as on the Coalescer's own path: the app's send, then the write.
        record = self.record
        content = kind & CONTENT_MASK
        record.took(kind >> EVENTS_SHIFT)
        record.produced(content, self.clock())
        stamp = self.clock()
        if content and record.first_token_at is None:
            batch.eager = False  # the first token is out: batching may start
        batch.last_write = now
        record.wrote(len(body), content, stamp)
        return self.server_send(message)
