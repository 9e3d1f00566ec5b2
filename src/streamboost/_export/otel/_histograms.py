"""The OpenTelemetry histograms, recorded when a reader collects rather than per stream.

The SDK's ``Histogram.record`` costs ~8 us (attribute cleaning and hashing, locks, exemplar
filter) and a stream makes up to three. A finished stream only appends its numbers (and its
context, for exemplars) to a deque; a reader's collection records them first thing, from an
observable instrument's callback (the SDK runs those before it reads the aggregations). That
instrument never reports an observation, so no metric of its name is exported. The same
instruments, names, units, bucket advice and attributes as recording inline; the records go
through ``_sdk_record`` (the SDK's own histograms skip the copy of the attribute dicts).
"""

from __future__ import annotations

import threading
import weakref
from collections import deque
from collections.abc import Iterable
from typing import Final

from opentelemetry import metrics
from opentelemetry.context import Context
from opentelemetry.metrics import CallbackOptions, Observation

from .._buckets import DEFAULT_BUCKETS, MetricBuckets
from .._spec import HTTP_ADVICE as HTTP_ADVICE
from .._spec import OTEL_DURATION, OTEL_TPOT, OTEL_TTFT, OTelHistogram
from .._spec import TPOT_ADVICE as TPOT_ADVICE
from .._spec import TTFT_ADVICE as TTFT_ADVICE
from ._sdk_record import recorder

# Streams waiting for a collection; past this each new stream also records a few old ones
# itself, so memory stays bounded when nothing collects (no reader, or a slow one).
_MAX_PENDING: Final = 16_384
_CATCH_UP: Final = 4

Attributes = dict[str, str | int]
# http attributes, token attributes, duration, TTFT, TPOT, the context at the stream's end
_Pending = tuple[Attributes, Attributes, float, float | None, float | None, Context]


class StreamHistograms:
    """``http.server.request.duration`` and the GenAI TTFT/TPOT histograms of one meter."""

    def __init__(self, meter: metrics.Meter, buckets: MetricBuckets = DEFAULT_BUCKETS) -> None:
        # Bucket advice only: a View or a reader's preferred aggregation (exponential
        # histograms, say) takes precedence in the SDK.
        ttft, tpot, duration = buckets.otel_advice()
        self._ttft = _histogram(meter, OTEL_TTFT, ttft)
        self._tpot = _histogram(meter, OTEL_TPOT, tpot)
        self._duration = _histogram(meter, OTEL_DURATION, duration)
        # Their record(), without the attribute copy for the SDK's own histograms (_sdk_record)
        self._records = (recorder(self._duration), recorder(self._ttft), recorder(self._tpot))
        self._pending: deque[_Pending] = deque()
        with _LIVE_LOCK:
            _LIVE.add(self)
        # A second registration on one meter returns the first instrument (and its callback),
        # so the callback serves every StreamHistograms.
        meter.create_observable_gauge(
            "streamboost.otel.pending",
            callbacks=[_record_all_pending],
            description="Not exported: records the buffered stream measurements on collection.",
        )

    def add(
        self,
        http_attrs: Attributes,
        token_attrs: Attributes,
        duration: float,
        ttft: float | None,
        tpot: float | None,
        context: Context,
    ) -> None:
        """One finished stream: TTFT and TPOT are recorded when not None (TPOT with TTFT).

        ``context`` is the stream's current context (``get_current()``), for exemplars.
        """
        pending = self._pending
        pending.append((http_attrs, token_attrs, duration, ttft, tpot, context))
        if len(pending) > _MAX_PENDING:
            self.record_pending(_CATCH_UP)

    def record_pending(self, limit: int | None = None) -> None:
        """Record waiting streams into the instruments (all, or the ``limit`` oldest).

        Safe from any thread: each entry is taken once (``deque.popleft`` is atomic).
        """
        pending = self._pending
        duration, ttft_hist, tpot_hist = self._records
        left = len(pending) if limit is None else limit
        while left > 0:
            left -= 1
            try:
                http_attrs, token_attrs, seconds, ttft, tpot, ctx = pending.popleft()
            except IndexError:
                return
            duration(seconds, http_attrs, ctx)
            if ttft is not None:
                ttft_hist(ttft, token_attrs, ctx)
                if tpot is not None:
                    tpot_hist(tpot, token_attrs, ctx)


_LIVE: weakref.WeakSet[StreamHistograms] = weakref.WeakSet()
_LIVE_LOCK: Final = threading.Lock()


def _record_all_pending(options: CallbackOptions) -> Iterable[Observation]:
    """Runs first in every collection (by any reader, on its thread): record what waits."""
    with _LIVE_LOCK:
        live = list(_LIVE)
    for histograms in live:
        histograms.record_pending()
    return ()


def _histogram(
    meter: metrics.Meter, h: OTelHistogram, boundaries: tuple[float, ...]
) -> metrics.Histogram:
    return meter.create_histogram(
        h.name,
        unit=h.unit,
        description=h.description,
        explicit_bucket_boundaries_advisory=boundaries,
    )
