"""The per-response record that the send wrapper fills and the exporters read once.

The middleware owns one ``StreamRecord`` per HTTP response, and the record owns every change
to itself: the per-chunk ones are its kernel base's methods (``took``, ``sent``, ``wrote``: a
few slots, no allocation, no metric call), the rest are the methods below. Observers and
exporters only read it, once when the response starts and once when the stream has ended.
Times are seconds from the injected clock (``time.perf_counter`` by default), so tests can
drive them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from typing import Final, NamedTuple, Protocol

from ._kernel import PyRecordBase, RecordBase
from ._usage import Usage

Clock = Callable[[], float]

DEFAULT_CLOCK: Final[Clock] = time.perf_counter

_PYTHON_BASE: Final = RecordBase is PyRecordBase  # else the C base (zeroed at allocation)
_NEVER: Final = float("-inf")

OUTCOME_COMPLETED: Final = "completed"
OUTCOME_CLIENT_DISCONNECTED: Final = "client_disconnected"
OUTCOME_ERROR: Final = "error"
OUTCOME_NO_TOKEN: Final = "no_token"
OUTCOME_STALLED: Final = "stalled"  # ended by CoalesceConfig(stall_timeout=...)


class PhaseTiming(NamedTuple):
    """One timed phase of a request (``phase()``, a ``gather_phases()`` branch)."""

    name: str
    started_at: float  # time.perf_counter() readings
    ended_at: float
    fallback: str | None  # None, or why the fallback was used: "timeout" or "error"


class StreamRecord(RecordBase):
    """Timing and accounting of one HTTP response, filled as it streams.

    All ``*_at`` fields are clock readings (``None`` until the moment happens);
    ``request_at`` is when the middleware saw the request.
    """

    # The per-chunk counters and times are RecordBase's (C when built: see ``_kernel``).
    __slots__ = (
        "headers_at",
        "method",
        "outcome",
        "phases",
        "request_at",
        "route",
        "scope",
        "series",
        "status",
        "streaming",
        "usage",
    )

    def __init__(self, scope: dict[str, object], request_at: float) -> None:
        if _PYTHON_BASE:
            # The C base starts zeroed (None, 0, 0.0): only the Python twin needs these stores
            # (one response's fixed cost), and its gap_counts list.
            super().__init__()
            self.first_byte_at = self.first_token_at = self.last_token_at = None
            self.last_body_at = None  # the last body message, sent or written
            self.chunks_in = 0  # body messages the app sent
            self.events = 0  # whole events seen (SSE events, NDJSON lines)
            self.content_events = 0  # events that carry output tokens
            self.writes = 0  # body messages sent to the server
            self.bytes_out = 0  # body bytes sent to the server
            self.gap_max = self.gap_sum = 0.0  # gaps between content events (``produced``)
        self.scope = scope
        method = scope.get("method", "")
        self.method: str = method if type(method) is str else str(method)
        self.request_at = request_at
        self.app_at = request_at  # the app's last body message (stall_timeout counts from it)
        self.gap_at = _NEVER  # the app's last content event (none yet)
        self.status: int = 0
        # True when the response is a stream StreamBoost recognises (SSE, NDJSON, text).
        self.streaming: bool = False
        self.outcome: str = OUTCOME_COMPLETED
        # None until set: the response start's time; phases (phase(), gather_phases());
        # exporters' per-response caches, each with its owner (several observers may read one
        # record): (route resolver, route label) and (Prometheus observer, its series); token
        # usage, when the stream reported it (_usage).
        self.headers_at: float | None
        self.phases: list[PhaseTiming] | None
        self.route: tuple[object, str] | None
        self.series: tuple[object, object] | None
        self.usage: Usage | None
        self.headers_at = self.phases = self.route = self.series = self.usage = None

    def began(self, status: int, streaming: bool, now: float) -> None:
        """The response start went out: ``streaming`` when its body is a stream we read."""
        self.status = status
        self.streaming = streaming
        self.headers_at = now

    def add_phase(self, timing: PhaseTiming) -> None:
        """A ``phase()`` or ``gather_phases()`` branch of this request ended."""
        if self.phases is None:
            self.phases = [timing]
        else:
            self.phases.append(timing)

    def client_left(self) -> None:
        """The client went away (``http.disconnect``, a failed or timed-out write)."""
        self.outcome = OUTCOME_CLIENT_DISCONNECTED

    def app_failed(self) -> None:
        """The app raised (after the client left, that stays the outcome)."""
        if self.outcome not in (OUTCOME_CLIENT_DISCONNECTED, OUTCOME_STALLED):
            self.outcome = OUTCOME_ERROR
            if self.headers_at is None:
                self.status = 500  # what the server answers for an app that failed

    def write_failed(self, error: BaseException) -> None:
        """A batched write failed and ended the stream (``OSError``: the client is gone)."""
        if self.outcome == OUTCOME_COMPLETED:
            disconnected = isinstance(error, OSError)
            self.outcome = OUTCOME_CLIENT_DISCONNECTED if disconnected else OUTCOME_ERROR

    def stalled(self) -> None:
        """``stall_timeout`` passed without a body message from the app: the stream is ended."""
        if self.outcome == OUTCOME_COMPLETED:
            self.outcome = OUTCOME_STALLED

    def inter_token_gaps(self) -> tuple[int, ...]:
        """Gaps between the app's content events per ``_table.GAP_BOUNDS`` bucket (the last
        is +Inf), not cumulative; ``gap_sum`` is their sum, ``gap_max`` the largest."""
        return tuple(self.gap_counts)

    def no_response(self) -> None:
        """The app returned without a response start: the server sends a 500."""
        self.status = 500
        self.outcome = OUTCOME_ERROR

    def verdict(self) -> str:
        """The outcome as it will be settled: a stream that completed without one content
        event is ``no_token`` (OpenTelemetry reads this before the stream has ended)."""
        outcome = self.outcome
        if outcome == OUTCOME_COMPLETED and self.streaming and self.content_events == 0:
            return OUTCOME_NO_TOKEN
        return outcome

    def settle(self) -> None:
        """The request is over: fix the outcome (``verdict``, inlined: once per response)."""
        if self.outcome == OUTCOME_COMPLETED and self.streaming and self.content_events == 0:
            self.outcome = OUTCOME_NO_TOKEN

    def route_label(self, resolver: Callable[[dict[str, object]], str]) -> str:
        """``resolver(scope)``, resolved once per response (the route is known by its start)."""
        cached = self.route
        if cached is not None and cached[0] is resolver:
            return cached[1]
        label = resolver(self.scope)
        self.route = (resolver, label)
        return label

    def time_to_first_token(self) -> float | None:
        if self.first_token_at is None:
            return None
        return self.first_token_at - self.request_at

    def time_per_output_token(self) -> float | None:
        """(last content event - first) / (content events - 1), or None below two events."""
        if self.first_token_at is None or self.last_token_at is None or self.content_events < 2:
            return None
        return (self.last_token_at - self.first_token_at) / (self.content_events - 1)

    def stream_duration(self) -> float | None:
        """Request to last body chunk; background tasks after the body never count."""
        if self.last_body_at is None:
            return None
        return self.last_body_at - self.request_at


current_record: ContextVar[StreamRecord | None] = ContextVar(
    "streamboost_current_record", default=None
)
"""The record of the request being served; set by the middleware around the app call so
``phase()`` can attach timings to it."""


class StreamObserver(Protocol):
    """Receives each response's record: exporters (Prometheus, OpenTelemetry) implement it.

    Neither method runs per chunk. ``stream_started`` is called once when the response start
    is sent (``record.status`` and ``record.streaming`` are known then); ``stream_ended`` once
    after the last message, the failure or the disconnect, with every field final.
    """

    def stream_started(self, record: StreamRecord) -> None: ...

    def stream_ended(self, record: StreamRecord) -> None: ...


_logger = logging.getLogger("streamboost")


def notify_started(record: StreamRecord, observers: Iterable[StreamObserver]) -> None:
    """``stream_started`` on each observer; one that fails is logged, never the request's."""
    for observer in observers:
        try:
            observer.stream_started(record)
        except Exception:
            _logger.exception("observer %r failed in stream_started", observer)


def notify_ended(record: StreamRecord, observers: Iterable[StreamObserver]) -> None:
    """``stream_ended`` on each observer; one that fails is logged, never the request's."""
    for observer in observers:
        try:
            observer.stream_ended(record)
        except Exception:
            _logger.exception("observer %r failed in stream_ended", observer)
