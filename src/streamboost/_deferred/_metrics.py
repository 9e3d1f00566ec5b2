"""Prometheus export of deferred work: plain-int counters read at scrape time, per-batch histograms.

The put/defer path never touches prometheus_client: writers count in plain ints and a
``PlainCollector`` of the spec's ``DEFERRED_COUNTS`` reads them (and the live queue depth)
when ``/metrics`` is scraped. Histograms (``DEFERRED_BATCH``) are observed once per committed
batch. In multiprocess mode an ``IntMirror`` copies the same samples into file-backed values
instead: the counter summed over all workers, the depth over live ones.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from typing import Protocol

from prometheus_client import REGISTRY, CollectorRegistry

from .._export import _spec as spec
from .._export.prometheus import _int_sync
from .._export.prometheus._families import histogram
from .._export.prometheus._int_sync import IntMirror
from .._export.prometheus._multiprocess import install as install_multiprocess
from .._export.prometheus._multiprocess import multiprocess_dir
from .._export.prometheus._plain import PlainCollector, Sample


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


def samples(source: MetricsSource) -> Iterator[Sample]:
    """One source's series, by the spec's families."""
    name = source.name
    yield spec.DEFERRED_QUEUE_DEPTH, (name,), source.queue_depth()
    for outcome, count in outcome_counts(source):
        yield spec.DEFERRED_ITEMS, (name, outcome), count


class DeferredMetrics:
    """One per registry: the per-batch histograms plus the counts of every live source."""

    def __init__(self, registry: CollectorRegistry) -> None:
        install_multiprocess()  # before the histograms' values are made (no-op in one process)
        self.batch_size = histogram(spec.DEFERRED_BATCH_SIZE, registry)
        self.write_duration = histogram(spec.DEFERRED_WRITE_DURATION, registry)
        self.lag = histogram(spec.DEFERRED_LAG, registry)
        self._counts: PlainCollector[MetricsSource] | IntMirror[MetricsSource]
        if multiprocess_dir() is None:
            self._counts = PlainCollector(spec.DEFERRED_COUNTS, samples)
            registry.register(self._counts)
        else:  # a custom collector is never seen by the files' aggregation
            mirror = IntMirror(spec.DEFERRED_COUNTS, samples, registry)
            _int_sync.register(mirror.sync)
            self._counts = mirror

    def add(self, source: MetricsSource) -> None:
        self._counts.add(source)


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
