"""Spec records turned into prometheus_client objects.

``scrape_family`` is the empty family a scrape-time collector fills; ``counter``, ``gauge``
and ``histogram`` register prometheus_client metrics (file-backed in multiprocess mode).
Families are never given their unit: prometheus_client would print a ``# UNIT`` line and the
exposition would change.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from .._spec import Family


def scrape_family(f: Family) -> Metric:
    if f.kind == "counter":
        return CounterMetricFamily(f.name, f.help, labels=f.labels)
    if f.kind == "gauge":
        return GaugeMetricFamily(f.name, f.help, labels=f.labels)
    return HistogramMetricFamily(f.name, f.help, labels=f.labels)


def counter(f: Family, registry: CollectorRegistry | None) -> Counter:
    _expect(f, "counter")
    return Counter(f.name, f.help, f.labels, registry=registry)


def gauge(f: Family, registry: CollectorRegistry | None) -> Gauge:
    """A gauge summed over live workers in multiprocess mode."""
    _expect(f, "gauge")
    return Gauge(f.name, f.help, f.labels, multiprocess_mode="livesum", registry=registry)


def histogram(f: Family, registry: CollectorRegistry | None) -> Histogram:
    _expect(f, "histogram")
    return Histogram(f.name, f.help, f.labels, buckets=f.buckets, registry=registry)


def _expect(f: Family, kind: str) -> None:
    if f.kind != kind:
        raise TypeError(f"{f.name} is a {f.kind} in the export spec, not a {kind}")
