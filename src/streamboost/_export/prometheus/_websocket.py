"""WebSocket connections in Prometheus: the ``streamboost_websocket_*`` families.

A connection is observed twice: at the accept (the active gauge goes up) and at its end
(the gauge goes down; the connection counter by close code, the duration and time to first
message histograms and the message counters get their values). Nothing happens per message
here: the connection counted its messages in plain ints. The families are the export spec's
``WEBSOCKET_FAMILIES``: plain numbers exported by a Collector in one process, prometheus_client
values in multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``), summed across workers by
``/metrics`` like the stream families.
"""

from __future__ import annotations

import weakref
from bisect import bisect_left
from collections.abc import Iterator
from typing import Protocol

from prometheus_client import REGISTRY, CollectorRegistry

from ..._wsconn import WebSocketRecord, close_class
from .. import _spec_websocket as spec
from .._route import OVERFLOW, SeriesCap
from .._spec import TTFT_BUCKETS
from . import _multiprocess
from ._families import counter, gauge, histogram
from ._multiprocess import multiprocess_dir
from ._plain import Hist, PlainCollector, Sample


class _RouteSeries(Protocol):
    def start(self) -> None: ...

    def end(self, record: WebSocketRecord) -> None: ...

    def closed(self, code: str) -> None: ...


class _Backend(Protocol):
    def route(self, route: str) -> _RouteSeries: ...


class FastRoute:
    """One route's plain numbers; ``closes`` holds the (route, code) counts."""

    __slots__ = ("active", "closes", "duration", "first_message", "received", "sent", "writes")

    def __init__(self) -> None:
        self.active = 0
        self.closes: dict[str, int] = {}
        self.duration = Hist(spec.WS_DURATION_BUCKETS)
        self.first_message = Hist(TTFT_BUCKETS)
        self.received = self.sent = self.writes = 0

    def start(self) -> None:
        self.active += 1

    def closed(self, code: str) -> None:
        self.closes[code] = self.closes.get(code, 0) + 1

    def end(self, record: WebSocketRecord) -> None:
        if record.accepted_at is not None:
            self.active -= 1
        h = self.duration
        value = record.duration
        h.counts[bisect_left(h.bounds, value)] += 1
        h.sum += value
        first = record.first_sent_at
        if first is not None:
            h = self.first_message
            value = first - record.connected_at
            h.counts[bisect_left(h.bounds, value)] += 1
            h.sum += value
        self.received += record.received
        self.sent += record.sent
        self.writes += record.writes


class FastWebSockets:
    """Single process: every route's numbers, a source of the registry's ``PlainCollector``."""

    def __init__(self) -> None:
        self.routes: dict[str, FastRoute] = {}

    def route(self, route: str) -> FastRoute:
        series = self.routes.get(route)
        if series is None:
            series = self.routes[route] = FastRoute()
        return series

    def samples(self) -> Iterator[Sample]:
        for route, s in list(self.routes.items()):
            labels = (route,)
            yield spec.WS_ACTIVE, labels, s.active
            for code, count in list(s.closes.items()):
                yield spec.WS_CONNECTIONS, (route, code), count
            yield spec.WS_DURATION, labels, s.duration
            yield spec.WS_FIRST_MESSAGE, labels, s.first_message
            yield spec.WS_MESSAGES, (route, "in"), s.received
            yield spec.WS_MESSAGES, (route, "out"), s.sent
            yield spec.WS_WRITES, labels, s.writes


def collector(source: FastWebSockets) -> PlainCollector[FastWebSockets]:
    """The registry's Collector of ``source`` (names checked by prefix, as the streams')."""
    plain: PlainCollector[FastWebSockets] = PlainCollector(
        spec.WEBSOCKET_FAMILIES, FastWebSockets.samples, describe=False
    )
    plain.add(source)
    return plain


class ClientFamilies:
    """Multiprocess: the WebSocket families as prometheus_client metrics, from the spec."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.active = gauge(spec.WS_ACTIVE, registry)  # summed over the live workers
        self.connections = counter(spec.WS_CONNECTIONS, registry)
        self.duration = histogram(spec.WS_DURATION, registry)
        self.first_message = histogram(spec.WS_FIRST_MESSAGE, registry)
        self.messages = counter(spec.WS_MESSAGES, registry)
        self.writes = counter(spec.WS_WRITES, registry)


class ClientRoute:
    """One route's prometheus_client children, bound once."""

    __slots__ = ("_families", "_route", "active", "duration", "first", "inn", "out", "writes")

    def __init__(self, families: ClientFamilies, route: str) -> None:
        self._families, self._route = families, route
        self.active = families.active.labels(route)
        self.duration = families.duration.labels(route)
        self.first = families.first_message.labels(route)
        self.inn = families.messages.labels(route, "in")
        self.out = families.messages.labels(route, "out")
        self.writes = families.writes.labels(route)

    def start(self) -> None:
        self.active.inc()

    def closed(self, code: str) -> None:
        self._families.connections.labels(self._route, code).inc()

    def end(self, record: WebSocketRecord) -> None:
        if record.accepted_at is not None:
            self.active.dec()
        self.duration.observe(record.duration)
        if record.first_sent_at is not None:
            self.first.observe(record.first_sent_at - record.connected_at)
        # inc(0) still writes the sample, so a route's message series exist from its first
        # connection, as in one process.
        self.inn.inc(record.received)
        self.out.inc(record.sent)
        self.writes.inc(record.writes)


class ClientWebSockets:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.families = ClientFamilies(registry)

    def route(self, route: str) -> ClientRoute:
        return ClientRoute(self.families, route)


# One backend per registry: StreamBoost instances on one registry share its series.
_backends: weakref.WeakKeyDictionary[CollectorRegistry, _Backend] = weakref.WeakKeyDictionary()


def backend_for(registry: CollectorRegistry | None) -> _Backend:
    target = REGISTRY if registry is None else registry
    backend = _backends.get(target)
    if backend is None:
        if multiprocess_dir() is not None:
            _multiprocess.install()  # before the first value: file-backed, named by slot
            backend = ClientWebSockets(target)
        else:
            fast = FastWebSockets()
            target.register(collector(fast))
            backend = fast
        _backends[target] = backend
    return backend


class PrometheusWebSockets:
    """The Prometheus observer: route labels capped at ``max_series``, (route, code) too."""

    def __init__(self, *, registry: CollectorRegistry | None, max_series: int) -> None:
        self._backend = backend_for(registry)
        self._routes = SeriesCap(max_series)
        self._codes = SeriesCap(max_series)
        self._series: dict[str, _RouteSeries] = {}

    def _route(self, route: str) -> _RouteSeries:
        series = self._series.get(route)
        if series is None:
            label = route if self._routes.admit((route,)) else OVERFLOW
            series = self._series.get(label)
            if series is None:
                series = self._backend.route(label)
            self._series[label] = series  # bounded: admitted routes and the overflow one
        return series

    def connection_started(self, record: WebSocketRecord) -> None:
        self._route(record.route).start()

    def connection_ended(self, record: WebSocketRecord) -> None:
        series = self._route(record.route)
        series.end(record)
        code = record.close_code or ""
        if self._codes.admit((record.route, code)):
            series.closed(code)
        else:
            self._route(OVERFLOW).closed(close_class(code))
