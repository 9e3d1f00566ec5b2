"""WebSocket export: the ``streamboost_websocket_*`` families and OpenTelemetry instruments.

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
from importlib.metadata import version
from typing import Final, Protocol

from opentelemetry import metrics as otel_metrics
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from . import _metricspec as spec
from . import _multiproc
from ._metricspec import OTelInstrument
from ._multiproc import multiprocess_dir
from ._promstats import Hist
from ._route import OVERFLOW, SeriesCap
from ._wsconn import WebSocketObserver, WebSocketRecord

DIRECTIONS: Final = ("in", "out")


def code_class(code: str) -> str:
    """The overflow ``code`` label: ``"1xxx"``, ``"3xxx"``, ``"4xxx"``, or the word itself."""
    return f"{code[0]}xxx" if code.isdigit() else code


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
        self.first_message = Hist(spec.TTFT_BUCKETS)
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
    """Single process: every route's numbers, and the Collector that exports them."""

    def __init__(self) -> None:
        self.routes: dict[str, FastRoute] = {}

    def route(self, route: str) -> FastRoute:
        series = self.routes.get(route)
        if series is None:
            series = self.routes[route] = FastRoute()
        return series

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        routes = list(self.routes.items())
        a = spec.WS_ACTIVE
        active = GaugeMetricFamily(a.name, a.help, labels=a.labels)
        connections = _counter(spec.WS_CONNECTIONS)
        duration = _histogram(spec.WS_DURATION)
        first = _histogram(spec.WS_FIRST_MESSAGE)
        messages = _counter(spec.WS_MESSAGES)
        writes = _counter(spec.WS_WRITES)
        for route, s in routes:
            labels = (route,)
            active.add_metric(labels, s.active)
            for code, count in list(s.closes.items()):
                connections.add_metric((route, code), count)
            duration.add_metric(labels, s.duration.buckets(), s.duration.sum)
            first.add_metric(labels, s.first_message.buckets(), s.first_message.sum)
            messages.add_metric((route, "in"), s.received)
            messages.add_metric((route, "out"), s.sent)
            writes.add_metric(labels, s.writes)
        yield active
        yield connections
        yield duration
        yield first
        yield messages
        yield writes


def _counter(f: spec.Family) -> CounterMetricFamily:
    return CounterMetricFamily(f.name, f.help, labels=f.labels)


def _histogram(f: spec.Family) -> HistogramMetricFamily:
    return HistogramMetricFamily(f.name, f.help, labels=f.labels)


class ClientFamilies:
    """Multiprocess: the WebSocket families as prometheus_client metrics, from the spec."""

    def __init__(self, registry: CollectorRegistry) -> None:
        a = spec.WS_ACTIVE
        self.active = Gauge(
            a.name, a.help, a.labels, multiprocess_mode="livesum", registry=registry
        )
        self.connections = _client_counter(spec.WS_CONNECTIONS, registry)
        self.duration = _client_histogram(spec.WS_DURATION, registry)
        self.first_message = _client_histogram(spec.WS_FIRST_MESSAGE, registry)
        self.messages = _client_counter(spec.WS_MESSAGES, registry)
        self.writes = _client_counter(spec.WS_WRITES, registry)


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


def _client_counter(f: spec.Family, registry: CollectorRegistry) -> Counter:
    return Counter(f.name, f.help, f.labels, registry=registry)


def _client_histogram(f: spec.Family, registry: CollectorRegistry) -> Histogram:
    return Histogram(f.name, f.help, f.labels, buckets=f.buckets, registry=registry)


# One backend per registry: StreamBoost instances on one registry share its series.
_backends: weakref.WeakKeyDictionary[CollectorRegistry, _Backend] = weakref.WeakKeyDictionary()


def backend_for(registry: CollectorRegistry | None) -> _Backend:
    target = REGISTRY if registry is None else registry
    backend = _backends.get(target)
    if backend is None:
        if multiprocess_dir() is not None:
            _multiproc.install()  # before the first value: file-backed, named by slot
            backend = ClientWebSockets(target)
        else:
            fast = FastWebSockets()
            target.register(fast)
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
            self._route(OVERFLOW).closed(code_class(code))


Attributes = dict[str, str]


class OTelWebSockets:
    """The OpenTelemetry observer: the ``streamboost.websocket.*`` instruments of one meter."""

    def __init__(
        self, *, meter_provider: otel_metrics.MeterProvider | None, max_series: int
    ) -> None:
        lib_version = version("streamboost")
        if meter_provider is None:
            meter = otel_metrics.get_meter("streamboost", lib_version)
        else:
            meter = meter_provider.get_meter("streamboost", lib_version)
        self._active = meter.create_up_down_counter(**_args(spec.OTEL_WS_ACTIVE))
        self._connections = meter.create_counter(**_args(spec.OTEL_WS_CONNECTIONS))
        self._messages = meter.create_counter(**_args(spec.OTEL_WS_MESSAGES))
        self._writes = meter.create_counter(**_args(spec.OTEL_WS_WRITES))
        d, f = spec.OTEL_WS_DURATION, spec.OTEL_WS_FIRST_MESSAGE
        self._duration = meter.create_histogram(
            **_args(d), explicit_bucket_boundaries_advisory=d.boundaries
        )
        self._first = meter.create_histogram(
            **_args(f), explicit_bucket_boundaries_advisory=f.boundaries
        )
        self._routes = SeriesCap(max_series)
        self._codes = SeriesCap(max_series)
        # Attribute dicts built once per admitted route: plain, in, out.
        self._attrs: dict[str, tuple[Attributes, Attributes, Attributes]] = {}

    def _attributes(self, route: str) -> tuple[Attributes, Attributes, Attributes]:
        attrs = self._attrs.get(route)
        if attrs is None:
            label = route if self._routes.admit((route,)) else OVERFLOW
            attrs = self._attrs.get(label)
            if attrs is None:
                plain = {"http.route": label}
                attrs = (
                    plain,
                    {**plain, "network.io.direction": "receive"},
                    {**plain, "network.io.direction": "transmit"},
                )
            self._attrs[label] = attrs
        return attrs

    def connection_started(self, record: WebSocketRecord) -> None:
        self._active.add(1, self._attributes(record.route)[0])

    def connection_ended(self, record: WebSocketRecord) -> None:
        plain, inn, out = self._attributes(record.route)
        if record.accepted_at is not None:
            self._active.add(-1, plain)
        code = record.close_code or ""
        if self._codes.admit((record.route, code)):
            closed = {**plain, "streamboost.websocket.close_code": code}
        else:
            closed = {"http.route": OVERFLOW, "streamboost.websocket.close_code": code_class(code)}
        self._connections.add(1, closed)
        self._duration.record(record.duration, plain)
        if record.first_sent_at is not None:
            self._first.record(record.first_sent_at - record.connected_at, plain)
        if record.received:
            self._messages.add(record.received, inn)
        if record.sent:
            self._messages.add(record.sent, out)
        if record.writes:
            self._writes.add(record.writes, plain)


def _args(i: OTelInstrument) -> dict[str, str]:
    return {"name": i.name, "unit": i.unit, "description": i.description}


def build_websocket_observers(
    *,
    metrics: bool,
    registry: CollectorRegistry | None,
    otel: bool,
    meter_provider: otel_metrics.MeterProvider | None,
    max_series: int,
) -> tuple[WebSocketObserver, ...]:
    """The WebSocket observers StreamBoost's export options ask for (options already checked
    by ``build_exporters``)."""
    observers: list[WebSocketObserver] = []
    if metrics:
        observers.append(PrometheusWebSockets(registry=registry, max_series=max_series))
    if otel:
        observers.append(OTelWebSockets(meter_provider=meter_provider, max_series=max_series))
    return tuple(observers)
