"""Prometheus export of deferred work: plain-int counters read at scrape time, per-batch histograms.

The put/defer path never touches prometheus_client: writers count in plain ints and a custom
collector reads them (and the live queue depth) when ``/metrics`` is scraped. Histograms are
observed once per committed batch. In multiprocess mode the ints are copied into file-backed
values instead (``_int_sync``): the counter summed over all workers, the depth over live ones.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Iterator
from typing import Protocol

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .._export.prometheus import _int_sync
from .._export.prometheus._multiprocess import install as install_multiprocess
from .._export.prometheus._multiprocess import multiprocess_dir

_SIZE_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)
_TIME_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class MetricsSource(Protocol):
    """What a writer (or the defer runner) exposes to the collector."""

    @property
    def name(self) -> str: ...

    @property
    def written(self) -> int: ...

    @property
    def retried(self) -> int: ...

    @property
    def dead_lettered(self) -> int: ...

    @property
    def lost(self) -> int: ...

    def queue_depth(self) -> int: ...

    def outcome_labels(self) -> tuple[str, str, str]: ...


def outcome_counts(source: MetricsSource) -> tuple[tuple[str, int], ...]:
    """``(outcome, count)`` of one source: the one place that lists the outcomes."""
    written, retried, failed = source.outcome_labels()
    return (
        (written, source.written),
        (retried, source.retried),
        (failed, source.dead_lettered),
        ("lost", source.lost),
    )


class DeferredMetrics(Collector):
    """One per registry: the per-batch histograms plus a collector over every live source."""

    def __init__(self, registry: CollectorRegistry) -> None:
        install_multiprocess()  # before the histograms' values are made (no-op in one process)
        self._sources: weakref.WeakSet[MetricsSource] = weakref.WeakSet()
        self.batch_size = Histogram(
            "streamboost_deferred_batch_size",
            "Items per batch handed to a deferred writer's sink.",
            ["writer"],
            buckets=_SIZE_BUCKETS,
            registry=registry,
        )
        self.write_duration = Histogram(
            "streamboost_deferred_write_duration_seconds",
            "Time one sink call took (successful or not).",
            ["writer"],
            buckets=_TIME_BUCKETS,
            registry=registry,
        )
        self.lag = Histogram(
            "streamboost_deferred_lag_seconds",
            "Time from put() accepting the oldest item of a batch to the sink committing it.",
            ["writer"],
            buckets=_TIME_BUCKETS,
            registry=registry,
        )
        self._multiprocess: _Multiprocess | None = None
        if multiprocess_dir() is None:
            registry.register(self)
        else:  # a custom collector is never seen by the files' aggregation
            self._multiprocess = _Multiprocess(registry)

    def add(self, source: MetricsSource) -> None:
        if self._multiprocess is not None:
            self._multiprocess.add(source)
        else:
            self._sources.add(source)

    def describe(self) -> Iterable[Metric]:
        return self._families(())

    def collect(self) -> Iterable[Metric]:
        return self._families(list(self._sources))

    def _families(self, sources: Iterable[MetricsSource]) -> Iterator[Metric]:
        depth = GaugeMetricFamily(
            "streamboost_deferred_queue_depth",
            "Items accepted but not yet committed (deferred jobs pending or running).",
            labels=["writer"],
        )
        items = CounterMetricFamily(
            "streamboost_deferred_items",
            "Deferred items by outcome: written, retried (per retry), dead_lettered, lost.",
            labels=["writer", "outcome"],
        )
        # Live sources sharing a name (an app built twice, a writer re-created) add up.
        depths: dict[str, int] = {}
        counts: dict[tuple[str, str], int] = {}
        for source in sources:
            name = source.name
            depths[name] = depths.get(name, 0) + source.queue_depth()
            for outcome, value in outcome_counts(source):
                counts[name, outcome] = counts.get((name, outcome), 0) + value
        for name, value in depths.items():
            depth.add_metric([name], value)
        for (name, outcome), value in counts.items():
            items.add_metric([name, outcome], value)
        yield depth
        yield items


class _Multiprocess:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.depth = Gauge(
            "streamboost_deferred_queue_depth",
            "Items accepted but not yet committed (deferred jobs pending or running).",
            ["writer"],
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.items = Counter(
            "streamboost_deferred_items",
            "Deferred items by outcome: written, retried (per retry), dead_lettered.",
            ["writer", "outcome"],
            registry=registry,
        )
        self._copied: weakref.WeakKeyDictionary[MetricsSource, dict[str, int]] = (
            weakref.WeakKeyDictionary()
        )
        self._names: set[str] = set()
        _int_sync.register(self.sync)

    def add(self, source: MetricsSource) -> None:
        for outcome, _count in outcome_counts(source):
            self.items.labels(source.name, outcome)
        with _int_sync.LOCK:
            self._copied[source] = {}
            self._names.add(source.name)

    def sync(self) -> None:
        depths = dict.fromkeys(self._names, 0)  # a writer gone since: depth 0, not its last
        for source, copied in list(self._copied.items()):
            depths[source.name] += source.queue_depth()
            for outcome, count in outcome_counts(source):
                old = copied.get(outcome, 0)
                if count > old:
                    self.items.labels(source.name, outcome).inc(count - old)
                    copied[outcome] = count
        for name, depth in depths.items():
            self.depth.labels(name).set(depth)


_by_registry: weakref.WeakKeyDictionary[CollectorRegistry, DeferredMetrics] = (
    weakref.WeakKeyDictionary()
)


def metrics_for(registry: CollectorRegistry | None) -> DeferredMetrics:
    """The shared metrics of ``registry`` (None: the default REGISTRY), created on first use."""
    registry = REGISTRY if registry is None else registry
    metrics = _by_registry.get(registry)
    if metrics is None:
        metrics = _by_registry[registry] = DeferredMetrics(registry)
    return metrics
