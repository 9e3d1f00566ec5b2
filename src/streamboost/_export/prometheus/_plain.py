"""Plain numbers exported at scrape time: ``Hist`` and the one ``PlainCollector``.

The request path, the cache's hit path and the put path only add to ints and lists, with no
lock and no prometheus_client call. A ``PlainCollector`` holds the spec families it exports
and its sources (weakly); at scrape time it asks each source for its samples, ``(family,
label values, value)`` with a value an int, a float or a ``Hist``, adds up samples that
share labels (two caches or writers of one name), and fills the families in spec order,
series sorted by labels. The stream backend, every cache and every deferred writer export
through it; in multiprocess mode ``_int_sync.IntMirror`` copies the same samples to files.
"""

from __future__ import annotations

import time
import weakref
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.samples import Exemplar
from prometheus_client.utils import floatToGoString

from .._spec import Family
from ._families import scrape_family


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

    def merged(self, other: Hist) -> Hist:
        """A new histogram holding both (no exemplars)."""
        total = Hist(self.bounds)
        total.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        total.sum = self.sum + other.sum
        return total

    def buckets(self) -> list[tuple[str, float] | tuple[str, float, Exemplar]]:
        counts = list(self.counts)  # one snapshot: +Inf equals the count
        exemplars = self.exemplars
        les = _les(self.bounds)
        out: list[tuple[str, float] | tuple[str, float, Exemplar]] = []
        total = 0
        for i, count in enumerate(counts):
            total += count
            exemplar = exemplars[i] if exemplars is not None else None
            out.append((les[i], total) if exemplar is None else (les[i], total, exemplar))
        return out


# The ``le`` labels of each bucket tuple, formatted once (the spec has a handful of tuples).
_LES: dict[tuple[float, ...], tuple[str, ...]] = {}


def _les(bounds: tuple[float, ...]) -> tuple[str, ...]:
    les = _LES.get(bounds)
    if les is None:
        formatted = [floatToGoString(b) for b in bounds]  # type: ignore[no-untyped-call]
        les = _LES[bounds] = (*formatted, "+Inf")
    return les


Value = int | float | Hist
Sample = tuple[Family, tuple[str, ...], Value]
S = TypeVar("S")


class PlainCollector(Collector, Generic[S]):
    """A prometheus_client Collector of ``families``, read from its sources at scrape time.

    ``samples(source)`` yields a source's samples; ``describe=False`` registers no names (the
    stream families are checked by their prefix, not per registry).
    """

    def __init__(
        self,
        families: tuple[Family, ...],
        samples: Callable[[S], Iterable[Sample]],
        *,
        describe: bool = True,
    ) -> None:
        self._families = families
        self._samples = samples
        self._describe = describe
        self._sources: weakref.WeakSet[S] = weakref.WeakSet()

    def add(self, source: S) -> None:
        self._sources.add(source)

    def describe(self) -> Iterator[Metric]:
        if self._describe:
            yield from map(scrape_family, self._families)

    def collect(self) -> Iterator[Metric]:
        index = {id(f): i for i, f in enumerate(self._families)}
        series: list[dict[tuple[str, ...], Value]] = [{} for _ in self._families]
        for source in list(self._sources):
            for family, labels, value in self._samples(source):
                values = series[index[id(family)]]
                old = values.get(labels)
                values[labels] = value if old is None else _add(old, value)
        for f, values in zip(self._families, series, strict=True):
            metric = scrape_family(f)
            for labels, value in sorted(values.items(), key=_labels):
                _fill(metric, labels, value)
            yield metric


def _labels(item: tuple[tuple[str, ...], Value]) -> tuple[str, ...]:
    return item[0]


def _fill(metric: Metric, labels: tuple[str, ...], value: Value) -> None:
    if isinstance(metric, HistogramMetricFamily):
        if not isinstance(value, Hist):
            raise TypeError(f"{metric.name}: a histogram family given a number")
        metric.add_metric(labels, value.buckets(), value.sum)
    elif isinstance(metric, CounterMetricFamily | GaugeMetricFamily):
        if isinstance(value, Hist):
            raise TypeError(f"{metric.name}: a {metric.type} family given a histogram")
        metric.add_metric(labels, value)
    else:
        raise TypeError(f"{metric.name}: not a family the spec makes")


def _add(old: Value, new: Value) -> Value:
    if isinstance(old, Hist):
        if not isinstance(new, Hist):
            raise TypeError("a histogram sample and a number share a series")
        return old.merged(new)
    if isinstance(new, Hist):
        raise TypeError("a histogram sample and a number share a series")
    return old + new
