"""Cache counters as plain ints, exported at scrape time (Prometheus) or collection (OTel).

The hit path only does ``stats.hits += 1``. A Prometheus custom Collector per registry and one
set of OpenTelemetry observable instruments per meter provider read every live cache's stats.
In multiprocess mode the ints are copied into file-backed counters instead (``_int_sync``), and
load durations, observed on a miss, go straight to a file-backed histogram.
"""

from __future__ import annotations

import weakref
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from .._export.prometheus import _int_sync
from .._export.prometheus._multiprocess import install as install_multiprocess
from .._export.prometheus._multiprocess import multiprocess_dir

LOAD_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
RESULTS = ("hit", "miss", "stale", "error")


class CacheStats:
    """Counters of one cache: requests by result, and a histogram of load durations."""

    __slots__ = (
        "__weakref__",
        "errors",
        "hits",
        "load_buckets",
        "load_count",
        "load_observer",
        "load_sum",
        "misses",
        "name",
        "stale",
    )

    def __init__(self, name: str) -> None:
        self.name = name
        self.hits = 0
        self.misses = 0
        self.stale = 0
        self.errors = 0
        self.load_buckets = [0] * (len(LOAD_BUCKETS) + 1)
        self.load_sum = 0.0
        self.load_count = 0
        self.load_observer: Any = None  # multiprocess: the file-backed histogram child

    def observe_load(self, seconds: float) -> None:
        self.load_buckets[bisect_left(LOAD_BUCKETS, seconds)] += 1
        self.load_sum += seconds
        self.load_count += 1
        if self.load_observer is not None:
            self.load_observer.observe(seconds)

    def results(self) -> Iterator[tuple[str, int]]:
        yield from zip(RESULTS, (self.hits, self.misses, self.stale, self.errors), strict=True)


class CacheCollector(Collector):
    """Exports every registered cache; caches sharing a name are summed."""

    def __init__(self) -> None:
        self._stats: weakref.WeakSet[CacheStats] = weakref.WeakSet()

    def add(self, stats: CacheStats) -> None:
        self._stats.add(stats)

    def describe(self) -> Iterable[Any]:
        return [
            CounterMetricFamily(
                "streamboost_cache_requests", "Cache requests by result", labels=["cache", "result"]
            ),
            HistogramMetricFamily(
                "streamboost_cache_load_duration_seconds",
                "Time the cached function took on a miss or refresh",
                labels=["cache"],
            ),
        ]

    def collect(self) -> Iterable[Any]:
        requests: dict[tuple[str, str], int] = {}
        loads: dict[str, tuple[list[int], float]] = {}
        for stats in list(self._stats):
            for result, count in stats.results():
                key = (stats.name, result)
                requests[key] = requests.get(key, 0) + count
            buckets, total = loads.get(stats.name, ([0] * len(stats.load_buckets), 0.0))
            merged = [a + b for a, b in zip(buckets, stats.load_buckets, strict=True)]
            loads[stats.name] = (merged, total + stats.load_sum)
        counter = CounterMetricFamily(
            "streamboost_cache_requests", "Cache requests by result", labels=["cache", "result"]
        )
        for (name, result), count in sorted(requests.items()):
            counter.add_metric([name, result], count)
        histogram = HistogramMetricFamily(
            "streamboost_cache_load_duration_seconds",
            "Time the cached function took on a miss or refresh",
            labels=["cache"],
        )
        for name, (buckets, total) in sorted(loads.items()):
            cumulative, running = [], 0
            for bound, count in zip((*LOAD_BUCKETS, float("inf")), buckets, strict=True):
                running += count
                cumulative.append((_bound(bound), running))
            histogram.add_metric([name], cumulative, total)
        yield counter
        yield histogram


def _bound(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


_collectors: weakref.WeakKeyDictionary[CollectorRegistry, CacheCollector] = (
    weakref.WeakKeyDictionary()
)


class MultiprocessCacheMetrics:
    """Multiprocess mode: the same families as file-backed values, fed by deltas of the ints."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "streamboost_cache_requests",
            "Cache requests by result",
            ["cache", "result"],
            registry=registry,
        )
        self.load = Histogram(
            "streamboost_cache_load_duration_seconds",
            "Time the cached function took on a miss or refresh",
            ["cache"],
            buckets=LOAD_BUCKETS,
            registry=registry,
        )
        self._copied: weakref.WeakKeyDictionary[CacheStats, tuple[int, ...]] = (
            weakref.WeakKeyDictionary()
        )
        _int_sync.register(self.sync)

    def add(self, stats: CacheStats) -> None:
        for result in RESULTS:  # every result exported from the start, at 0
            self.requests.labels(stats.name, result)
        stats.load_observer = self.load.labels(stats.name)
        with _int_sync.LOCK:
            self._copied[stats] = (0,) * len(RESULTS)

    def sync(self) -> None:
        for stats, copied in list(self._copied.items()):
            now = (stats.hits, stats.misses, stats.stale, stats.errors)
            if now == copied:
                continue
            for result, new, old in zip(RESULTS, now, copied, strict=True):
                if new > old:
                    self.requests.labels(stats.name, result).inc(new - old)
            self._copied[stats] = now


_multiprocess: weakref.WeakKeyDictionary[CollectorRegistry, MultiprocessCacheMetrics] = (
    weakref.WeakKeyDictionary()
)


def register_prometheus(stats: CacheStats, registry: CollectorRegistry | None) -> None:
    registry = REGISTRY if registry is None else registry
    if multiprocess_dir() is not None:
        install_multiprocess()
        metrics = _multiprocess.get(registry)
        if metrics is None:
            metrics = _multiprocess[registry] = MultiprocessCacheMetrics(registry)
        metrics.add(stats)
        return
    collector = _collectors.get(registry)
    if collector is None:
        collector = _collectors[registry] = CacheCollector()
        registry.register(collector)
    collector.add(stats)


class _OtelInstruments:
    def __init__(self, meter_provider: Any) -> None:
        from opentelemetry import metrics

        provider = meter_provider or metrics.get_meter_provider()
        self.provider = provider  # kept alive so its id() is never reused for another provider
        meter = provider.get_meter("streamboost")
        self.stats: weakref.WeakSet[CacheStats] = weakref.WeakSet()
        meter.create_observable_counter(
            "streamboost.cache.requests",
            callbacks=[self._observe],
            unit="{request}",
            description="Cache requests by result",
        )
        self.load_duration = meter.create_histogram(
            "streamboost.cache.load.duration",
            unit="s",
            description="Time the cached function took on a miss or refresh",
        )

    def _observe(self, options: Any) -> Iterable[Any]:
        from opentelemetry.metrics import Observation

        totals: dict[tuple[str, str], int] = {}
        for stats in list(self.stats):
            for result, count in stats.results():
                totals[(stats.name, result)] = totals.get((stats.name, result), 0) + count
        return [
            Observation(count, {"cache": name, "result": result})
            for (name, result), count in totals.items()
        ]


_otel: dict[int, _OtelInstruments] = {}


def register_otel(stats: CacheStats, meter_provider: Any) -> Any:
    """Add ``stats`` to the provider's observable counter; return the load-duration histogram."""
    instruments = _otel.get(id(meter_provider))
    if instruments is None:
        instruments = _otel[id(meter_provider)] = _OtelInstruments(meter_provider)
    instruments.stats.add(stats)
    return instruments.load_duration
