"""Admission metrics: plain numbers on the admission path, families built at scrape time.

The families' names, help and buckets are the export spec's (``_metricspec.ADMISSION_*``).
One process: a Collector reads every live ``AdmissionStats`` of its registry. Multiprocess
mode (``PROMETHEUS_MULTIPROC_DIR``): the gauges and the counter are copied into file-backed
values by ``_mpsync`` (queue depth and active summed over live workers), and the wait
histogram is observed into its file-backed values as it happens.
"""

from __future__ import annotations

import weakref
from bisect import bisect_left
from collections.abc import Iterable, Iterator

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from .. import _mpsync, _multiproc
from .._metricspec import (
    ADMISSION_ACTIVE,
    ADMISSION_QUEUE_DEPTH,
    ADMISSION_REASONS,
    ADMISSION_REJECTED,
    ADMISSION_RESULTS,
    ADMISSION_WAIT,
)

_BOUNDS = ADMISSION_WAIT.buckets


class AdmissionStats:
    """What one admission controller counts: live gauges, waits by result, rejections."""

    __slots__ = ("__weakref__", "active", "histograms", "rejected", "sums", "wait", "waiting")

    def __init__(self) -> None:
        self.waiting = 0  # requests in the queue now
        self.active = 0  # admitted requests running the app now
        self.wait = {result: [0] * (len(_BOUNDS) + 1) for result in ADMISSION_RESULTS}
        self.sums = dict.fromkeys(ADMISSION_RESULTS, 0.0)
        self.rejected = dict.fromkeys(ADMISSION_REASONS, 0)
        # Multiprocess mode: the file-backed histogram's children, observed as it happens.
        self.histograms: dict[str, Histogram] | None = None

    def waited(self, result: str, seconds: float) -> None:
        self.wait[result][bisect_left(_BOUNDS, seconds)] += 1
        self.sums[result] += seconds
        histograms = self.histograms
        if histograms is not None:
            histograms[result].observe(seconds)

    def reject(self, reason: str, seconds: float) -> None:
        self.rejected[reason] += 1
        self.waited("rejected", seconds)


class AdmissionCollector(Collector):
    """One per registry: exports every live ``AdmissionStats`` added to it."""

    def __init__(self, registry: CollectorRegistry) -> None:
        _multiproc.install()  # before any value is made (no-op in one process)
        self._stats: weakref.WeakSet[AdmissionStats] = weakref.WeakSet()
        self._multiprocess: _Multiprocess | None = None
        if _multiproc.multiprocess_dir() is None:
            registry.register(self)
        else:  # a custom collector is never seen by the files' aggregation
            self._multiprocess = _Multiprocess(registry)

    def add(self, stats: AdmissionStats) -> None:
        if self._multiprocess is not None:
            self._multiprocess.add(stats)
        else:
            self._stats.add(stats)

    def describe(self) -> Iterable[Metric]:
        return self._families(())

    def collect(self) -> Iterable[Metric]:
        return self._families(list(self._stats))

    def _families(self, all_stats: Iterable[AdmissionStats]) -> Iterator[Metric]:
        depth = GaugeMetricFamily(ADMISSION_QUEUE_DEPTH.name, ADMISSION_QUEUE_DEPTH.help)
        active = GaugeMetricFamily(ADMISSION_ACTIVE.name, ADMISSION_ACTIVE.help)
        wait = HistogramMetricFamily(ADMISSION_WAIT.name, ADMISSION_WAIT.help, labels=["result"])
        rejected = CounterMetricFamily(
            ADMISSION_REJECTED.name, ADMISSION_REJECTED.help, labels=["reason"]
        )
        waiting = running = 0
        counts = {result: [0] * (len(_BOUNDS) + 1) for result in ADMISSION_RESULTS}
        sums = dict.fromkeys(ADMISSION_RESULTS, 0.0)
        reasons = dict.fromkeys(ADMISSION_REASONS, 0)
        listed = list(all_stats)
        for stats in listed:
            waiting += stats.waiting
            running += stats.active
            for result, buckets in stats.wait.items():
                total = counts[result]
                for i, n in enumerate(list(buckets)):
                    total[i] += n
                sums[result] += stats.sums[result]
            for reason, n in stats.rejected.items():
                reasons[reason] += n
        if listed:
            depth.add_metric([], waiting)
            active.add_metric([], running)
            for result in ADMISSION_RESULTS:
                wait.add_metric([result], _cumulative(counts[result]), sums[result])
            for reason in ADMISSION_REASONS:
                rejected.add_metric([reason], reasons[reason])
        yield depth
        yield active
        yield wait
        yield rejected


def _cumulative(counts: list[int]) -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    total = 0
    for i, n in enumerate(counts):
        total += n
        le = floatToGoString(_BOUNDS[i]) if i < len(_BOUNDS) else "+Inf"  # type: ignore[no-untyped-call]
        out.append((le, total))
    return out


class _Multiprocess:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.depth = Gauge(
            ADMISSION_QUEUE_DEPTH.name,
            ADMISSION_QUEUE_DEPTH.help,
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.active = Gauge(
            ADMISSION_ACTIVE.name,
            ADMISSION_ACTIVE.help,
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.wait = Histogram(
            ADMISSION_WAIT.name,
            ADMISSION_WAIT.help,
            ["result"],
            buckets=_BOUNDS,
            registry=registry,
        )
        self.rejected = Counter(
            ADMISSION_REJECTED.name, ADMISSION_REJECTED.help, ["reason"], registry=registry
        )
        for reason in ADMISSION_REASONS:
            self.rejected.labels(reason)
        self._copied: weakref.WeakKeyDictionary[AdmissionStats, dict[str, int]] = (
            weakref.WeakKeyDictionary()
        )
        _mpsync.register(self.sync)

    def add(self, stats: AdmissionStats) -> None:
        stats.histograms = {result: self.wait.labels(result) for result in ADMISSION_RESULTS}
        with _mpsync.LOCK:
            self._copied[stats] = {}

    def sync(self) -> None:
        waiting = running = 0
        for stats, copied in list(self._copied.items()):
            waiting += stats.waiting
            running += stats.active
            for reason, count in stats.rejected.items():
                old = copied.get(reason, 0)
                if count > old:
                    self.rejected.labels(reason).inc(count - old)
                    copied[reason] = count
        self.depth.set(waiting)
        self.active.set(running)


_by_registry: weakref.WeakKeyDictionary[CollectorRegistry, AdmissionCollector] = (
    weakref.WeakKeyDictionary()
)


def export(stats: AdmissionStats, registry: CollectorRegistry | None) -> None:
    """Export ``stats`` through ``registry`` (None: the default REGISTRY)."""
    registry = REGISTRY if registry is None else registry
    collector = _by_registry.get(registry)
    if collector is None:
        collector = _by_registry[registry] = AdmissionCollector(registry)
    collector.add(stats)
