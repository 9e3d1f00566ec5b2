"""Admission metrics: plain numbers on the admission path, read at scrape time.

The families are the export spec's (``_spec.ADMISSION_*``), labelled by ``route``: the
template of a configured route limit, or ``*`` for every other request. The gauges (queue
depth, running requests) are not kept per request at all: a scrape counts them from the
gate. Waits and rejections are plain ints and ``Hist`` buckets. One ``PlainCollector`` per
registry reads every live gate; in multiprocess mode an ``IntMirror`` copies the same samples
into file-backed values (gauges summed over live workers) and waits are observed straight
into a file-backed histogram.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Iterator
from typing import Any, Protocol

from prometheus_client import REGISTRY, CollectorRegistry

from .._export import _spec as spec
from .._export.prometheus import _int_sync
from .._export.prometheus._int_sync import IntMirror
from .._export.prometheus._multiprocess import install as install_multiprocess
from .._export.prometheus._multiprocess import multiprocess_dir
from .._export.prometheus._plain import Hist, PlainCollector, Sample
from ._place import Queue

ANY_ROUTE = spec.ADMISSION_ANY_ROUTE
FAMILIES = (
    spec.ADMISSION_QUEUE_DEPTH,
    spec.ADMISSION_ACTIVE,
    spec.ADMISSION_WAIT,
    spec.ADMISSION_REJECTED,
)


class RouteCounts:
    """Waits by result and rejections by reason of one ``route`` label."""

    __slots__ = ("rejected", "wait")

    def __init__(self) -> None:
        self.wait = {result: Hist(spec.ADMISSION_WAIT.buckets) for result in spec.ADMISSION_RESULTS}
        self.rejected = dict.fromkeys(spec.ADMISSION_REASONS, 0)


class Gate(Queue, Protocol):
    """A ``_gate.Gate`` as the metrics read it."""

    stats: AdmissionStats


class AdmissionStats:
    """What one gate counts; ``active`` and ``waiting`` are its live totals (the gate's own)."""

    __slots__ = ("active", "observer", "routes", "waiting")

    def __init__(self, routes: Iterable[str]) -> None:
        self.active = 0  # admitted requests running the app now
        self.waiting = 0  # requests in the queue now
        self.routes = {route: RouteCounts() for route in (*routes, ANY_ROUTE)}
        self.observer: Any = None  # multiprocess: the file-backed wait histogram

    def waited(self, route: str | None, result: str, seconds: float) -> None:
        label = ANY_ROUTE if route is None else route
        self.routes[label].wait[result].observe(seconds)
        observer = self.observer
        if observer is not None:
            observer.labels(label, result).observe(seconds)

    def admitted_at_once(self, route: str | None) -> None:
        """``waited(route, "admitted", 0.0)`` without the bucket search (the usual case)."""
        hist = self.routes[ANY_ROUTE if route is None else route].wait["admitted"]
        hist.counts[0] += 1
        observer = self.observer
        if observer is not None:
            observer.labels(ANY_ROUTE if route is None else route, "admitted").observe(0.0)

    def reject(self, route: str | None, reason: str, seconds: float) -> None:
        self.routes[ANY_ROUTE if route is None else route].rejected[reason] += 1
        self.waited(route, "rejected", seconds)

    def rejected(self, reason: str) -> int:
        """Rejections for ``reason`` over every route."""
        return sum(counts.rejected[reason] for counts in self.routes.values())

    def count(self, result: str) -> int:
        """Waits that ended as ``result`` over every route."""
        return sum(sum(counts.wait[result].counts) for counts in self.routes.values())


def samples(gate: Gate) -> Iterator[Sample]:
    """One gate's series, by the spec's families."""
    stats = gate.stats
    waiting = dict.fromkeys(stats.routes, 0)
    for place in list(gate.waiters):
        waiting[ANY_ROUTE if place.route is None else place.route] += 1
    active = dict(gate.route_active)
    active[ANY_ROUTE] = stats.active - sum(active.values())
    for route, counts in stats.routes.items():
        yield spec.ADMISSION_QUEUE_DEPTH, (route,), waiting[route]
        yield spec.ADMISSION_ACTIVE, (route,), active[route]
        for result, hist in counts.wait.items():
            yield spec.ADMISSION_WAIT, (route, result), hist
        for reason, n in counts.rejected.items():
            yield spec.ADMISSION_REJECTED, (route, reason), n


_collectors: weakref.WeakKeyDictionary[CollectorRegistry, PlainCollector[Gate]] = (
    weakref.WeakKeyDictionary()
)
_mirrors: weakref.WeakKeyDictionary[CollectorRegistry, IntMirror[Gate]] = (
    weakref.WeakKeyDictionary()
)


def export(gate: Gate, registry: CollectorRegistry | None) -> None:
    """Export ``gate``'s samples through ``registry`` (None: the default REGISTRY)."""
    registry = REGISTRY if registry is None else registry
    if multiprocess_dir() is not None:
        install_multiprocess()
        mirror = _mirrors.get(registry)
        if mirror is None:
            mirror = _mirrors[registry] = IntMirror(FAMILIES, samples, registry)
            _int_sync.register(mirror.sync)
        gate.stats.observer = mirror.histogram(spec.ADMISSION_WAIT)
        mirror.add(gate)
        return
    collector = _collectors.get(registry)
    if collector is None:
        collector = _collectors[registry] = PlainCollector(FAMILIES, samples)
        registry.register(collector)
    collector.add(gate)
