"""The send path: one HTTP response's record, its scanner, coalescer and senders.

Read in this order: ``_response`` (the request's run; picks a sender at the response start),
``_kernel`` (the fast path, with its C twin ``_speedups``), ``_senders``, ``_scanner``,
``_coalescer`` and ``_flusher``; ``_record`` is what the exporters read.
"""

from ._coalescer import Coalescer
from ._format import stream_format
from ._kernel import NATIVE
from ._ready import on_asyncio
from ._record import (
    DEFAULT_CLOCK,
    OUTCOME_CLIENT_DISCONNECTED,
    OUTCOME_COMPLETED,
    OUTCOME_ERROR,
    OUTCOME_NO_TOKEN,
    OUTCOME_STALLED,
    Clock,
    PhaseTiming,
    StreamObserver,
    StreamRecord,
    current_record,
)
from ._response import HTTPStream
from ._scanner import EventScanner
from ._settings import ResponseSettings

__all__ = [
    "DEFAULT_CLOCK",
    "NATIVE",
    "OUTCOME_CLIENT_DISCONNECTED",
    "OUTCOME_COMPLETED",
    "OUTCOME_ERROR",
    "OUTCOME_NO_TOKEN",
    "OUTCOME_STALLED",
    "Clock",
    "Coalescer",
    "EventScanner",
    "HTTPStream",
    "PhaseTiming",
    "ResponseSettings",
    "StreamObserver",
    "StreamRecord",
    "current_record",
    "on_asyncio",
    "stream_format",
]
