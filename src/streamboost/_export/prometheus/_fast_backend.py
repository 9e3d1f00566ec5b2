"""Single-process Prometheus aggregation: plain numbers, exported by a custom Collector.

Observing a finished stream is a dozen list and attribute updates on the event loop thread,
with no lock and no prometheus_client call; the Collector turns the numbers into families at
scrape time. (Multiprocess mode cannot use this: it needs prometheus_client's file-backed
values, see ``_client_backend``.)
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.samples import Exemplar
from prometheus_client.utils import floatToGoString

from ..._timing import StreamRecord
from .. import _spec as spec
from .._spec import DURATION_BUCKETS, OUTCOMES, TPOT_BUCKETS, TTFT_BUCKETS, Family


class Hist:
    """Bucket counts (not cumulative; the last is +Inf), their sum, and the last exemplars."""

    __slots__ = ("bounds", "counts", "exemplars", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0
        self.exemplars: list[Exemplar | None] | None = None

    def observe(self, value: float, trace_id: str | None = None) -> None:
        i = bisect_left(self.bounds, value)
        self.counts[i] += 1
        self.sum += value
        if trace_id is not None:
            self.exemplar(i, value, trace_id)

    def exemplar(self, i: int, value: float, trace_id: str) -> None:
        """The last exemplar of bucket ``i`` (after ``value`` was counted there)."""
        if self.exemplars is None:
            self.exemplars = [None] * len(self.counts)
        self.exemplars[i] = Exemplar({"trace_id": trace_id}, value, time.time())

    def buckets(self) -> list[tuple[str, float] | tuple[str, float, Exemplar]]:
        counts = list(self.counts)  # one snapshot: +Inf equals the count
        exemplars = self.exemplars
        out: list[tuple[str, float] | tuple[str, float, Exemplar]] = []
        total = 0
        for i, count in enumerate(counts):
            total += count
            le = floatToGoString(self.bounds[i]) if i < len(self.bounds) else "+Inf"  # type: ignore[no-untyped-call]
            exemplar = exemplars[i] if exemplars is not None else None
            out.append((le, total) if exemplar is None else (le, total, exemplar))
        return out


class RouteStats:
    """Everything labelled (method, route)."""

    __slots__ = (
        "active",
        "bytes",
        "events",
        "outcomes",
        "stream_duration",
        "tpot",
        "ttfb",
        "ttft",
        "writes",
    )

    def __init__(self) -> None:
        self.ttfb = Hist(TTFT_BUCKETS)
        self.ttft = Hist(TTFT_BUCKETS)
        self.tpot = Hist(TPOT_BUCKETS)
        self.stream_duration = Hist(DURATION_BUCKETS)
        self.events = 0
        self.writes = 0
        self.bytes = 0
        self.active = 0
        self.outcomes = dict.fromkeys(OUTCOMES, 0)


class FastSeries:
    """The numbers of one (method, route, status); ``per_route`` is shared across statuses."""

    __slots__ = ("duration", "per_route", "requests")

    def __init__(self, per_route: RouteStats) -> None:
        self.requests = 0
        self.duration = Hist(DURATION_BUCKETS)
        self.per_route = per_route

    def start(self) -> None:
        self.per_route.active += 1

    def end(self, record: StreamRecord, duration: float, trace_id: str | None) -> None:
        # Hist.observe inlined: the calls were an eighth of the Prometheus observer's work.
        self.requests += 1
        h = self.duration
        i = bisect_left(h.bounds, duration)  # stream_duration's too: both DURATION_BUCKETS
        h.counts[i] += 1
        h.sum += duration
        if trace_id is not None:
            h.exemplar(i, duration, trace_id)
        r = self.per_route
        start = record.request_at
        first_byte = record.first_byte_at
        if first_byte is not None:
            h = r.ttfb
            value = first_byte - start
            h.counts[bisect_left(h.bounds, value)] += 1
            h.sum += value
        r.bytes += record.bytes_out
        if not record.streaming:
            return
        if record.headers_at is not None:
            r.active -= 1
        h = r.stream_duration
        h.counts[i] += 1
        h.sum += duration
        if trace_id is not None:
            h.exemplar(i, duration, trace_id)
        r.outcomes[record.outcome] += 1
        r.events += record.events
        r.writes += record.writes
        at = record.first_token_at
        if at is None:
            return
        h = r.ttft
        value = at - start
        i = bisect_left(h.bounds, value)
        h.counts[i] += 1
        h.sum += value
        if trace_id is not None:
            h.exemplar(i, value, trace_id)
        last, tokens = record.last_token_at, record.content_events
        if last is not None and tokens > 1:  # StreamRecord.time_per_output_token()
            h = r.tpot
            value = (last - at) / (tokens - 1)
            h.counts[bisect_left(h.bounds, value)] += 1
            h.sum += value


class FastBackend:
    """All series of one registry, and the Collector that exports them."""

    def __init__(self) -> None:
        self.series: dict[tuple[str, str, str], FastSeries] = {}
        self.routes: dict[tuple[str, str], RouteStats] = {}
        self.phases: dict[tuple[str, str], Hist] = {}
        self.fallbacks: dict[tuple[str, str, str], int] = {}

    def new_series(self, method: str, route: str, status: str) -> FastSeries:
        per_route = self.routes.get((method, route))
        if per_route is None:
            per_route = self.routes[(method, route)] = RouteStats()
        series = self.series.get((method, route, status))
        if series is None:
            series = self.series[(method, route, status)] = FastSeries(per_route)
        return series

    def phase(self, route: str, name: str, seconds: float, fallback: str | None) -> None:
        hist = self.phases.get((route, name))
        if hist is None:
            hist = self.phases[(route, name)] = Hist(TTFT_BUCKETS)
        hist.observe(seconds)
        if fallback is not None:
            key = (route, name, fallback)
            self.fallbacks[key] = self.fallbacks.get(key, 0) + 1

    def describe(self) -> Iterator[Metric]:
        return iter(())  # names are checked by the families' prefix, not per registry

    def collect(self) -> Iterator[Metric]:
        requests = _counter(spec.REQUESTS)
        duration = _histogram(spec.DURATION)
        for key, s in list(self.series.items()):
            requests.add_metric(key, s.requests)
            duration.add_metric(key, s.duration.buckets(), s.duration.sum)
        yield requests
        yield duration
        yield from _route_families(list(self.routes.items()))
        phase = _histogram(spec.PHASE)
        for phase_key, hist in list(self.phases.items()):
            phase.add_metric(phase_key, hist.buckets(), hist.sum)
        yield phase
        fallbacks = _counter(spec.FALLBACKS)
        for fallback_key, count in list(self.fallbacks.items()):
            fallbacks.add_metric(fallback_key, count)
        yield fallbacks


def _counter(f: Family) -> CounterMetricFamily:
    return CounterMetricFamily(f.name, f.help, labels=f.labels)


def _histogram(f: Family) -> HistogramMetricFamily:
    return HistogramMetricFamily(f.name, f.help, labels=f.labels)


def _route_families(routes: list[tuple[tuple[str, str], RouteStats]]) -> Iterator[Metric]:
    for attr, f in spec.ROUTE_HISTOGRAMS.items():
        family = _histogram(f)
        for key, stats in routes:
            hist: Hist = getattr(stats, attr)
            family.add_metric(key, hist.buckets(), hist.sum)
        yield family
    for attr, f in spec.ROUTE_COUNTERS.items():
        counter = _counter(f)
        for key, stats in routes:
            counter.add_metric(key, getattr(stats, attr))
        yield counter
    a = spec.ACTIVE
    active = GaugeMetricFamily(a.name, a.help, labels=a.labels)
    streams = _counter(spec.STREAMS)
    for key, stats in routes:
        active.add_metric(key, stats.active)
        for outcome, count in stats.outcomes.items():
            streams.add_metric([*key, outcome], count)
    yield active
    yield streams
