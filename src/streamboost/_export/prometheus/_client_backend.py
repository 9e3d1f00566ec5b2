"""Multiprocess Prometheus backend: prometheus_client's own families and values.

With ``PROMETHEUS_MULTIPROC_DIR`` set, prometheus_client keeps each value in a per-process file
that the ``MultiProcessCollector`` of ``/metrics`` sums over all workers, so this backend uses
its metric classes. Label children are bound once per label key and cached.
"""

from __future__ import annotations

import weakref

from prometheus_client import REGISTRY, CollectorRegistry

from ..._timing import StreamRecord
from .. import _spec as spec
from .._spec import OUTCOMES
from . import _int_sync
from ._families import counter, gauge, histogram


class Families:
    """The ``streamboost_*`` stream families registered in one registry, from the spec."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        r = registry
        self.requests = counter(spec.REQUESTS, r)
        self.duration = histogram(spec.DURATION, r)
        self.ttfb = histogram(spec.TTFB, r)
        self.ttft = histogram(spec.TTFT, r)
        self.tpot = histogram(spec.TPOT, r)
        self.stream_duration = histogram(spec.STREAM_DURATION, r)
        self.events = counter(spec.EVENTS, r)
        self.writes = counter(spec.WRITES, r)
        self.bytes = counter(spec.BYTES, r)
        self.active = gauge(spec.ACTIVE, r)
        self.streams = counter(spec.STREAMS, r)
        self.phase = histogram(spec.PHASE, r)
        self.fallbacks = counter(spec.FALLBACKS, r)


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
        _int_sync.sync_all()


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
