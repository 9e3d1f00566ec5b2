"""Multiprocess Prometheus backend: prometheus_client's own families and values.

With ``PROMETHEUS_MULTIPROC_DIR`` set, prometheus_client keeps each value in a per-process file
that the ``MultiProcessCollector`` of ``/metrics`` sums over all workers, so this backend uses
its metric classes. Label children are bound once per label key and cached.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Final

from prometheus_client import REGISTRY, CollectorRegistry, Histogram

from ..._stream import StreamRecord
from .. import _spec as spec
from .._buckets import DEFAULT_BUCKETS, MetricBuckets
from .._spec import OUTCOMES
from .._spec_health import GAPS, MAX_GAP
from . import _int_sync
from ._families import counter, gauge, histogram


class Families:
    """The ``streamboost_*`` stream families registered in one registry, from the spec."""

    def __init__(
        self, registry: CollectorRegistry | None, buckets: MetricBuckets = DEFAULT_BUCKETS
    ) -> None:
        r, b = registry, buckets
        self.requests = counter(spec.REQUESTS, r)
        self.duration = histogram(spec.DURATION, r, b.request_duration)
        self.ttfb = histogram(spec.TTFB, r, b.ttfb)
        self.ttft = histogram(spec.TTFT, r, b.ttft)
        self.tpot = histogram(spec.TPOT, r, b.tpot)
        self.stream_duration = histogram(spec.STREAM_DURATION, r, b.stream_duration)
        self.events = counter(spec.EVENTS, r)
        self.writes = counter(spec.WRITES, r)
        self.bytes = counter(spec.BYTES, r)
        self.active = gauge(spec.ACTIVE, r)
        self.streams = counter(spec.STREAMS, r)
        self.phase = histogram(spec.PHASE, r)
        self.fallbacks = counter(spec.FALLBACKS, r)
        self.gaps = histogram(GAPS, r, GAPS.buckets)
        self.max_gap = histogram(MAX_GAP, r, MAX_GAP.buckets)


# One family set per registry: two StreamBoost instances on one registry share it instead of
# failing with "Duplicated timeseries".
_families: weakref.WeakKeyDictionary[CollectorRegistry, Families] = weakref.WeakKeyDictionary()


def families_for(
    registry: CollectorRegistry | None, buckets: MetricBuckets = DEFAULT_BUCKETS
) -> Families:
    """The registry's families (made with ``buckets`` by the first call)."""
    target = REGISTRY if registry is None else registry
    families = _families.get(target)
    if families is None:
        families = _families[target] = Families(target, buckets)
    return families


class StreamChildren:
    """The stream families' children of one (method, route), bound at its first stream."""

    __slots__ = (
        *("active", "events", "gaps", "max_gap", "outcomes", "stream_duration", "tpot"),
        *("ttft", "writes"),
    )

    def __init__(self, f: Families, method: str, route: str) -> None:
        self.gaps = f.gaps.labels(method, route)
        self.max_gap = f.max_gap.labels(method, route)
        self.ttft = f.ttft.labels(method, route)
        self.tpot = f.tpot.labels(method, route)
        self.stream_duration = f.stream_duration.labels(method, route)
        self.events = f.events.labels(method, route)
        self.writes = f.writes.labels(method, route)
        self.active = f.active.labels(method, route)
        self.outcomes = {o: f.streams.labels(method, route, o) for o in OUTCOMES}


class ClientSeries:
    """The label children of one (method, route, status), bound once; the stream families'
    at the first stream (a child, once bound, is exported even at zero)."""

    __slots__ = ("_families", "_key", "bytes", "duration", "requests", "stream", "ttfb")

    def __init__(self, f: Families, method: str, route: str, status: str) -> None:
        self.requests = f.requests.labels(method, route, status)
        self.duration = f.duration.labels(method, route, status)
        self.ttfb = f.ttfb.labels(method, route)
        self.bytes = f.bytes.labels(method, route)
        self.stream: StreamChildren | None = None
        self._families = f
        self._key = (method, route)

    def streams(self) -> StreamChildren:
        stream = self.stream
        if stream is None:
            stream = self.stream = StreamChildren(self._families, *self._key)
        return stream

    def start(self) -> None:
        self.streams().active.inc()

    def end(self, record: StreamRecord, duration: float, trace_id: str | None) -> None:
        # Exemplars are not kept by multiprocess values: trace_id is unused here.
        start = record.request_at
        self.requests.inc()
        self.duration.observe(duration)
        if record.first_byte_at is not None:
            self.ttfb.observe(record.first_byte_at - start)
        if record.bytes_out:
            self.bytes.inc(record.bytes_out)
        if record.streaming:
            s = self.streams()
            if record.headers_at is not None:
                s.active.dec()
            s.stream_duration.observe(duration)
            s.outcomes[record.outcome].inc()
            if record.events:
                s.events.inc(record.events)
            s.writes.inc(record.writes)
            if record.content_events > 1:
                add_counts(s.gaps, record.gap_counts, record.gap_sum)
                s.max_gap.observe(record.gap_max)
            if record.first_token_at is not None:
                s.ttft.observe(record.first_token_at - start)
                tpot = record.time_per_output_token()
                if tpot is not None:
                    s.tpot.observe(tpot)
        # The request's cache and deferred counts are on file once its response is counted.
        _int_sync.sync_all()


def add_counts(child: Histogram, counts: Sequence[int], total: float) -> None:
    """Add one stream's per-bucket gap counts (not cumulative, the bounds of the child) and
    their sum to a histogram child: prometheus_client keeps a child's buckets per bucket, so
    this is ``observe`` for many values at once (its ``_buckets``/``_sum``, file-backed in
    multiprocess mode)."""
    buckets = child._buckets
    for i, n in enumerate(counts):
        if n:
            buckets[i].inc(n)
    child._sum.inc(total)


class ClientBackend:
    """Series of prometheus_client children in the families of one registry."""

    series_end: Final = staticmethod(ClientSeries.end)

    def __init__(
        self, registry: CollectorRegistry | None, buckets: MetricBuckets = DEFAULT_BUCKETS
    ) -> None:
        self.families = families_for(registry, buckets)
        self.buckets = buckets

    def new_series(self, method: str, route: str, status: str) -> ClientSeries:
        return ClientSeries(self.families, method, route, status)

    def phase(self, route: str, name: str, seconds: float, fallback: str | None) -> None:
        self.families.phase.labels(route, name).observe(seconds)
        if fallback is not None:
            self.families.fallbacks.labels(route, name, fallback).inc()
