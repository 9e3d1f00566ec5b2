"""Cache counters as plain ints, exported at scrape time (Prometheus) or collection (OTel).

The hit path only does ``stats.hits += 1``. The families are the export spec's
(``CACHE_FAMILIES``); one ``PlainCollector`` per registry and one set of OpenTelemetry
observable instruments per meter provider read every live cache's samples. In multiprocess
mode an ``IntMirror`` copies the same samples into file-backed counters instead, and load
durations, observed on a miss, go straight to a file-backed histogram.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry

from .._export import _spec as spec
from .._export.prometheus import _int_sync
from .._export.prometheus._int_sync import IntMirror
from .._export.prometheus._multiprocess import install as install_multiprocess
from .._export.prometheus._multiprocess import multiprocess_dir
from .._export.prometheus._plain import Hist, PlainCollector, Sample

LOAD_BUCKETS = spec.CACHE_LOAD_BUCKETS
RESULTS = spec.CACHE_RESULTS


class CacheStats:
    """Counters of one cache: requests by result, and a histogram of load durations."""

    __slots__ = (
        "__weakref__",
        "errors",
        "hits",
        "load",
        "load_observer",
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
        self.load = Hist(LOAD_BUCKETS)
        self.load_observer: Any = None  # multiprocess: the file-backed histogram child

    def observe_load(self, seconds: float) -> None:
        self.load.observe(seconds)
        if self.load_observer is not None:
            self.load_observer.observe(seconds)

    def count(self, result: str) -> None:
        """One request with ``result`` (``hit``, ``miss``, ``stale``, else an error)."""
        if result == "hit":
            self.hits += 1
        elif result == "miss":
            self.misses += 1
        elif result == "stale":
            self.stale += 1
        else:
            self.errors += 1

    def results(self) -> Iterator[tuple[str, int]]:
        yield from zip(RESULTS, (self.hits, self.misses, self.stale, self.errors), strict=True)


def samples(stats: CacheStats) -> Iterator[Sample]:
    """One cache's series, by the spec's families."""
    name = stats.name
    for result, count in stats.results():
        yield spec.CACHE_REQUESTS, (name, result), count
    yield spec.CACHE_LOAD, (name,), stats.load


_collectors: weakref.WeakKeyDictionary[CollectorRegistry, PlainCollector[CacheStats]] = (
    weakref.WeakKeyDictionary()
)
_mirrors: weakref.WeakKeyDictionary[CollectorRegistry, IntMirror[CacheStats]] = (
    weakref.WeakKeyDictionary()
)


def register_prometheus(stats: CacheStats, registry: CollectorRegistry | None) -> None:
    registry = REGISTRY if registry is None else registry
    if multiprocess_dir() is not None:
        install_multiprocess()
        mirror = _mirrors.get(registry)
        if mirror is None:
            mirror = _mirrors[registry] = IntMirror(spec.CACHE_FAMILIES, samples, registry)
            _int_sync.register(mirror.sync)
        stats.load_observer = mirror.histogram(spec.CACHE_LOAD).labels(stats.name)
        mirror.add(stats)
        return
    collector = _collectors.get(registry)
    if collector is None:
        collector = _collectors[registry] = PlainCollector(spec.CACHE_FAMILIES, samples)
        registry.register(collector)
    collector.add(stats)


class _OtelInstruments:
    def __init__(self, meter_provider: Any) -> None:
        from opentelemetry import metrics

        provider = meter_provider or metrics.get_meter_provider()
        self.provider = provider  # kept alive so its id() is never reused for another provider
        meter = provider.get_meter("streamboost")
        self.stats: weakref.WeakSet[CacheStats] = weakref.WeakSet()
        requests, load = spec.OTEL_CACHE_REQUESTS, spec.OTEL_CACHE_LOAD
        meter.create_observable_counter(
            requests.name,
            callbacks=[self._observe],
            unit=requests.unit,
            description=requests.description,
        )
        self.load_duration = meter.create_histogram(
            load.name, unit=load.unit, description=load.description
        )

    def _observe(self, options: Any) -> Iterable[Any]:
        from opentelemetry.metrics import Observation

        family = spec.CACHE_REQUESTS
        totals: dict[tuple[str, ...], int] = {}
        for stats in list(self.stats):
            for f, labels, count in samples(stats):
                if f is family and isinstance(count, int):
                    totals[labels] = totals.get(labels, 0) + count
        return [
            Observation(count, dict(zip(family.labels, labels, strict=True)))
            for labels, count in totals.items()
        ]


_otel: dict[int, _OtelInstruments] = {}


def register_otel(stats: CacheStats, meter_provider: Any) -> Any:
    """Add ``stats`` to the provider's observable counter; return the load-duration histogram."""
    instruments = _otel.get(id(meter_provider))
    if instruments is None:
        instruments = _otel[id(meter_provider)] = _OtelInstruments(meter_provider)
    instruments.stats.add(stats)
    return instruments.load_duration
