"""Single-process Prometheus aggregation of streams: plain numbers, exported by a collector.

Observing a finished stream is a dozen list and attribute updates on the event loop thread,
with no lock and no prometheus_client call; the ``PlainCollector`` turns the numbers into the
spec's families at scrape time. (Multiprocess mode cannot use this: it needs
prometheus_client's file-backed values, see ``_client_backend``.)
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client.core import Metric

from ..._timing import StreamRecord
from .. import _spec as spec
from .._spec import DURATION_BUCKETS, OUTCOMES, TPOT_BUCKETS, TTFT_BUCKETS
from ._plain import Hist, PlainCollector, Sample


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
    """All series of one registry, exported by a ``PlainCollector`` of the stream families."""

    def __init__(self) -> None:
        self.series: dict[tuple[str, str, str], FastSeries] = {}
        self.routes: dict[tuple[str, str], RouteStats] = {}
        self.phases: dict[tuple[str, str], Hist] = {}
        self.fallbacks: dict[tuple[str, str, str], int] = {}
        self._export = PlainCollector(spec.FAMILIES, FastBackend.samples, describe=False)
        self._export.add(self)

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
            yield spec.ACTIVE, route_key, r.active
            for outcome, count in list(r.outcomes.items()):
                yield spec.STREAMS, (*route_key, outcome), count
        for phase_key, hist in list(self.phases.items()):
            yield spec.PHASE, phase_key, hist
        for fallback_key, count in list(self.fallbacks.items()):
            yield spec.FALLBACKS, fallback_key, count
