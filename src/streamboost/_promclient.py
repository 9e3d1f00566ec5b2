"""Multiprocess Prometheus backend: prometheus_client's own families and values.

With ``PROMETHEUS_MULTIPROC_DIR`` set, prometheus_client keeps each value in a per-process file
that the ``MultiProcessCollector`` of ``/metrics`` sums over all workers, so this backend uses
its metric classes. Label children are bound once per label key and cached.
"""

from __future__ import annotations

import weakref

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from . import _mpsync
from ._buckets import DURATION_BUCKETS, OUTCOMES, TPOT_BUCKETS, TTFT_BUCKETS
from ._timing import StreamRecord

_MR = ("method", "route")
_MRS = ("method", "route", "status")


class Families:
    """The ``streamboost_*`` stream families registered in one registry."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        r = registry
        p = "streamboost_"
        self.requests = Counter(p + "http_requests_total", "HTTP responses.", _MRS, registry=r)
        self.duration = Histogram(
            p + "http_request_duration_seconds",
            "Request to the last body chunk (background tasks excluded).",
            _MRS,
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.ttfb = Histogram(
            p + "time_to_first_byte_seconds",
            "Request to the first body byte.",
            _MR,
            buckets=TTFT_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            p + "time_to_first_token_seconds",
            "Request to the first content event of a stream.",
            _MR,
            buckets=TTFT_BUCKETS,
            registry=r,
        )
        self.tpot = Histogram(
            p + "time_per_output_token_seconds",
            "(last content event - first) / (content events - 1).",
            _MR,
            buckets=TPOT_BUCKETS,
            registry=r,
        )
        self.stream_duration = Histogram(
            p + "stream_duration_seconds",
            "Request to the last body chunk of a stream.",
            _MR,
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.events = Counter(
            p + "stream_events_total", "Events the app streamed.", _MR, registry=r
        )
        self.writes = Counter(
            p + "stream_writes_total", "Body writes to the server.", _MR, registry=r
        )
        self.bytes = Counter(p + "response_bytes_total", "Body bytes sent.", _MR, registry=r)
        self.active = Gauge(
            p + "streams_active",
            "Streams in flight.",
            _MR,
            multiprocess_mode="livesum",
            registry=r,
        )
        self.streams = Counter(
            p + "streams_total", "Streams by outcome.", (*_MR, "outcome"), registry=r
        )
        self.phase = Histogram(
            p + "phase_duration_seconds",
            "Work before the first token, by phase.",
            ("route", "phase"),
            buckets=TTFT_BUCKETS,
            registry=r,
        )
        self.fallbacks = Counter(
            p + "phase_fallbacks_total",
            "Phases that used their fallback.",
            ("route", "phase", "reason"),
            registry=r,
        )


# One family set per registry: two StreamBoost instances on one registry share it instead of
# failing with "Duplicated timeseries".
_families: weakref.WeakKeyDictionary[CollectorRegistry, Families] = weakref.WeakKeyDictionary()


def families_for(registry: CollectorRegistry | None) -> Families:
    target = REGISTRY if registry is None else registry
    families = _families.get(target)
    if families is None:
        families = _families[target] = Families(target)
    return families


class ClientSeries:
    """The label children of one (method, route, status), bound once."""

    __slots__ = (
        "active",
        "bytes",
        "duration",
        "events",
        "outcomes",
        "requests",
        "stream_duration",
        "tpot",
        "ttfb",
        "ttft",
        "writes",
    )

    def __init__(self, f: Families, method: str, route: str, status: str) -> None:
        self.requests = f.requests.labels(method, route, status)
        self.duration = f.duration.labels(method, route, status)
        self.ttfb = f.ttfb.labels(method, route)
        self.ttft = f.ttft.labels(method, route)
        self.tpot = f.tpot.labels(method, route)
        self.stream_duration = f.stream_duration.labels(method, route)
        self.events = f.events.labels(method, route)
        self.writes = f.writes.labels(method, route)
        self.bytes = f.bytes.labels(method, route)
        self.active = f.active.labels(method, route)
        self.outcomes = {o: f.streams.labels(method, route, o) for o in OUTCOMES}

    def start(self) -> None:
        self.active.inc()

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
            if record.headers_at is not None:
                self.active.dec()
            self.stream_duration.observe(duration)
            self.outcomes[record.outcome].inc()
            if record.events:
                self.events.inc(record.events)
            self.writes.inc(record.writes)
            if record.first_token_at is not None:
                self.ttft.observe(record.first_token_at - start)
                tpot = record.time_per_output_token()
                if tpot is not None:
                    self.tpot.observe(tpot)
        # The request's cache and deferred counts are on file once its response is counted.
        _mpsync.sync_all()


class ClientBackend:
    """Series of prometheus_client children in the families of one registry."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.families = families_for(registry)

    def new_series(self, method: str, route: str, status: str) -> ClientSeries:
        return ClientSeries(self.families, method, route, status)

    def phase(self, route: str, name: str, seconds: float, fallback: str | None) -> None:
        self.families.phase.labels(route, name).observe(seconds)
        if fallback is not None:
            self.families.fallbacks.labels(route, name, fallback).inc()
