"""``streamboost_tokens_total``: token usage counted once per stream, at its end.

One process: plain ints per label set, exported by a ``PlainCollector`` (the family is
scraped, empty, before the first stream with usage, as the other stream families). Multiprocess:
a prometheus_client counter (file-backed), its children bound once per label set. One
backend per registry, with or without the ``tenant`` label.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from typing import Protocol

from prometheus_client import REGISTRY, CollectorRegistry, Counter
from prometheus_client.core import Metric

from ..._stream import StreamRecord
from .._spec import Family
from .._spec_tokens import TOKENS, TOKENS_BY_TENANT
from .._tokens import Tenant, TokenLabels
from ._families import counter
from ._multiprocess import multiprocess_dir
from ._plain import PlainCollector, Sample


class _Backend(Protocol):
    family: Family

    def add(self, labels: tuple[str, ...], tokens: int) -> None: ...


class PlainTokens:
    """Single process: ``(route, model, kind[, tenant]) -> tokens``."""

    def __init__(self, family: Family, registry: CollectorRegistry) -> None:
        self.family = family
        self.counts: dict[tuple[str, ...], int] = {}
        self._export = PlainCollector((family,), PlainTokens.samples, describe=False)
        self._export.add(self)
        registry.register(self)

    def add(self, labels: tuple[str, ...], tokens: int) -> None:
        counts = self.counts
        counts[labels] = counts.get(labels, 0) + tokens

    def describe(self) -> Iterator[Metric]:
        return self._export.describe()

    def collect(self) -> Iterator[Metric]:
        return self._export.collect()

    def samples(self) -> Iterator[Sample]:
        for labels, tokens in list(self.counts.items()):
            yield self.family, labels, tokens


class ClientTokens:
    """Multiprocess: a file-backed counter; children bound once per label set."""

    def __init__(self, family: Family, registry: CollectorRegistry) -> None:
        self.family = family
        self._counter: Counter = counter(family, registry)
        self._children: dict[tuple[str, ...], Counter] = {}

    def add(self, labels: tuple[str, ...], tokens: int) -> None:
        child = self._children.get(labels)
        if child is None:
            child = self._children[labels] = self._counter.labels(*labels)
        child.inc(tokens)


_backends: weakref.WeakKeyDictionary[CollectorRegistry, _Backend] = weakref.WeakKeyDictionary()


def _backend_for(registry: CollectorRegistry | None, by_tenant: bool) -> _Backend:
    target = REGISTRY if registry is None else registry
    family = TOKENS_BY_TENANT if by_tenant else TOKENS
    backend = _backends.get(target)
    if backend is None:
        if multiprocess_dir() is not None:
            backend = ClientTokens(family, target)
        else:
            backend = PlainTokens(family, target)
        _backends[target] = backend
    elif backend.family is not family:
        # A family has one label set: the second StreamBoost cannot add or drop ``tenant``.
        raise ValueError(
            f"tenant= is {'given' if by_tenant else 'not given'} here but "
            f"{'not given' if by_tenant else 'given'} to the StreamBoost already counting "
            "tokens in this registry; pass tenant= to both or neither, or give this one its "
            "own registry=CollectorRegistry()"
        )
    return backend


class PrometheusTokens:
    """What ``PrometheusObserver`` calls for a record with usage."""

    __slots__ = ("_backend", "_labels")

    def __init__(
        self, registry: CollectorRegistry | None, max_series: int, tenant: Tenant | None
    ) -> None:
        self._backend = _backend_for(registry, tenant is not None)
        self._labels = TokenLabels(max_series, tenant)

    def observe(self, record: StreamRecord, route: str) -> None:
        usage = record.usage
        assert usage is not None
        route_label, model, *tenant = self._labels.of(record, route)
        add = self._backend.add
        for kind, tokens in usage.counts():
            add((route_label, model, kind, *tenant), tokens)
