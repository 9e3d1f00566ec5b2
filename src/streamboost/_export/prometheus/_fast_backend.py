"""Single-process Prometheus aggregation of streams: plain numbers, exported by a collector.

Observing a finished stream is a dozen list and attribute updates on the event loop thread,
with no lock and no prometheus_client call; the ``PlainCollector`` turns the numbers into the
spec's families at scrape time. (Multiprocess mode cannot use this: it needs
prometheus_client's file-backed values, see ``_client_backend``.)
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator
from typing import Final

from prometheus_client.core import Metric

from ..._stream import StreamRecord
from ..._stream._kernel import tally_end, tally_layout
from .. import _spec as spec
from .._buckets import DEFAULT_BUCKETS, MetricBuckets
from .._spec import OUTCOMES, PHASE_BUCKETS
from .._spec_health import GAPS, HEALTH_FAMILIES, HEALTH_HISTOGRAMS, MAX_GAP
from ._plain import Hist, PlainCollector, Sample


class StreamStats:
    """The stream families of one (method, route), made at its first stream."""

    __slots__ = (
        *("active", "events", "gaps", "max_gap", "outcomes", "stream_duration", "tpot"),
        *("ttft", "writes"),
    )

    def __init__(self, buckets: MetricBuckets) -> None:
        self.gaps = Hist(GAPS.buckets)
        self.max_gap = Hist(MAX_GAP.buckets)
        self.ttft = Hist(tuple(buckets.ttft))
        self.tpot = Hist(tuple(buckets.tpot))
        self.stream_duration = Hist(tuple(buckets.stream_duration))
        self.events = 0
        self.writes = 0
        self.active = 0
        self.outcomes = dict.fromkeys(OUTCOMES, 0)


class RouteStats:
    """Everything labelled (method, route): of every response, and of streams (``stream``,
    None until the route streamed, so a route that never streams has no stream series)."""

    __slots__ = ("buckets", "bytes", "stream", "ttfb")

    def __init__(self, buckets: MetricBuckets = DEFAULT_BUCKETS) -> None:
        self.buckets = buckets
        self.ttfb = Hist(tuple(buckets.ttfb))
        self.bytes = 0
        self.stream: StreamStats | None = None

    def streams(self) -> StreamStats:
        """The stream families, made on the first call."""
        stream = self.stream
        if stream is None:
            stream = self.stream = StreamStats(self.buckets)
        return stream


class FastSeries:
    """The numbers of one (method, route, status); ``per_route`` is shared across statuses."""

    __slots__ = ("duration", "per_route", "requests")

    def __init__(self, per_route: RouteStats) -> None:
        self.requests = 0
        self.duration = Hist(tuple(per_route.buckets.request_duration))
        self.per_route = per_route

    def start(self) -> None:
        stream = self.per_route.stream
        if stream is None:
            stream = self.per_route.streams()
        stream.active += 1

    def end(self, record: StreamRecord, duration: float, trace_id: str | None) -> None:
        # Hist.observe inlined: the calls were an eighth of the Prometheus observer's work.
        self.requests += 1
        h = self.duration
        i = bisect_left(h.bounds, duration)
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
        s = r.stream
        if s is None:
            s = r.streams()
        if record.headers_at is not None:
            s.active -= 1
        h = s.stream_duration
        i = bisect_left(h.bounds, duration)
        h.counts[i] += 1
        h.sum += duration
        if trace_id is not None:
            h.exemplar(i, duration, trace_id)
        s.outcomes[record.outcome] += 1
        s.events += record.events
        s.writes += record.writes
        if record.content_events > 1:
            gaps = record.gap_counts
            h = s.gaps
            counts = h.counts
            for i, n in enumerate(gaps):
                if n:
                    counts[i] += n
            h.sum += record.gap_sum
            s.max_gap.observe(record.gap_max)
        at = record.first_token_at
        if at is None:
            return
        h = s.ttft
        value = at - start
        i = bisect_left(h.bounds, value)
        h.counts[i] += 1
        h.sum += value
        if trace_id is not None:
            h.exemplar(i, value, trace_id)
        content = record.content_events
        last = record.last_token_at
        if content > 1 and last is not None:  # record.time_per_output_token(), inlined
            tpot = (last - at) / (content - 1)
            h = s.tpot
            h.counts[bisect_left(h.bounds, tpot)] += 1
            h.sum += tpot


def _series_end() -> Callable[[FastSeries, StreamRecord, float, str | None], None]:
    """``FastSeries.end`` as a function of the series: the kernel's C twin where it is built
    (the same slot updates through the classes' slot offsets, a fifth of the instructions),
    else the Python method. The C twin refuses classes whose slots it does not find."""
    if tally_end is None or tally_layout is None:
        return FastSeries.end
    try:
        tally_layout(FastSeries, RouteStats, StreamStats, Hist, StreamRecord)
    except TypeError:  # a slot renamed or gone: tests/test_tally.py fails on this
        return FastSeries.end
    return tally_end


SERIES_END: Final = _series_end()


class FastBackend:
    """All series of one registry, exported by a ``PlainCollector`` of the stream families."""

    series_end: Final = staticmethod(SERIES_END)

    def __init__(self, buckets: MetricBuckets = DEFAULT_BUCKETS) -> None:
        self.buckets = buckets
        self.series: dict[tuple[str, str, str], FastSeries] = {}
        self.routes: dict[tuple[str, str], RouteStats] = {}
        self.phases: dict[tuple[str, str], Hist] = {}
        self.fallbacks: dict[tuple[str, str, str], int] = {}
        self._export = PlainCollector(
            (*spec.FAMILIES, *HEALTH_FAMILIES), FastBackend.samples, describe=False
        )
        self._export.add(self)

    def new_series(self, method: str, route: str, status: str) -> FastSeries:
        per_route = self.routes.get((method, route))
        if per_route is None:
            per_route = self.routes[(method, route)] = RouteStats(self.buckets)
        series = self.series.get((method, route, status))
        if series is None:
            series = self.series[(method, route, status)] = FastSeries(per_route)
        return series

    def phase(self, route: str, name: str, seconds: float, fallback: str | None) -> None:
        hist = self.phases.get((route, name))
        if hist is None:
            hist = self.phases[(route, name)] = Hist(PHASE_BUCKETS)
        hist.observe(seconds)
        if fallback is not None:
            key = (route, name, fallback)
            self.fallbacks[key] = self.fallbacks.get(key, 0) + 1

    def describe(self) -> Iterator[Metric]:
        return self._export.describe()

    def collect(self) -> Iterator[Metric]:
        return self._export.collect()

    def samples(self) -> Iterator[Sample]:
        """Every series' numbers (snapshots of the dicts: a scrape runs in a thread)."""
        for key, s in list(self.series.items()):
            yield spec.REQUESTS, key, s.requests
            yield spec.DURATION, key, s.duration
        for route_key, r in list(self.routes.items()):
            for attr, f in spec.ROUTE_HISTOGRAMS.items():
                yield f, route_key, getattr(r, attr)
            for attr, f in spec.ROUTE_COUNTERS.items():
                yield f, route_key, getattr(r, attr)
            stream = r.stream
            if stream is None:  # the route never streamed: no stream series at all
                continue
            for attr, f in spec.STREAM_HISTOGRAMS.items():
                yield f, route_key, getattr(stream, attr)
            for attr, f in HEALTH_HISTOGRAMS.items():
                yield f, route_key, getattr(stream, attr)
            for attr, f in spec.STREAM_COUNTERS.items():
                yield f, route_key, getattr(stream, attr)
            yield spec.ACTIVE, route_key, stream.active
            for outcome, count in list(stream.outcomes.items()):
                yield spec.STREAMS, (*route_key, outcome), count
        for phase_key, hist in list(self.phases.items()):
            yield spec.PHASE, phase_key, hist
        for fallback_key, count in list(self.fallbacks.items()):
            yield spec.FALLBACKS, fallback_key, count
