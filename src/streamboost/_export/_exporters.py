"""Builds StreamBoost's exporters from its keyword arguments.

The middleware only calls ``build_exporters``: it gets back the observers to add and the
``/metrics`` endpoint (or None), so the export options stay out of the send path's module.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any
from wsgiref.simple_server import WSGIServer

from opentelemetry import metrics as otel_metrics
from opentelemetry import trace
from prometheus_client import CollectorRegistry, start_http_server

from .._stream import Clock, StreamObserver, StreamRecord
from ._buckets import DEFAULT_BUCKETS, MetricBuckets
from ._route import AppRoute, RouteResolver
from ._tokens import Tenant
from .otel._observer import OTelObserver
from .prometheus._guard import MetricsGuard, check_host, check_token, parse_networks
from .prometheus._observer import MetricsApp, PrometheusObserver, exposition_registry

logger = logging.getLogger("streamboost")


class _Both:
    """Prometheus and OpenTelemetry in one observer: the span's trace id becomes the exemplar."""

    __slots__ = ("_exemplars", "_observe", "_otel_observe", "stream_started")

    def __init__(self, prometheus: PrometheusObserver, otel: OTelObserver) -> None:
        # Bound methods kept: one call less per stream (only Prometheus acts at the start).
        self.stream_started: Callable[[StreamRecord], None] = prometheus.stream_started
        self._observe = prometheus.observe
        self._otel_observe = otel.observe
        self._exemplars = prometheus.exemplars

    def stream_ended(self, record: StreamRecord) -> None:
        trace_id = self._otel_observe(record)
        self._observe(record, trace_id if self._exemplars else None)


@dataclass(frozen=True, slots=True)
class Exporters:
    observers: tuple[StreamObserver, ...]
    metrics_app: MetricsApp | None
    metrics_path: str = ""
    metrics_server: WSGIServer | None = None  # the metrics_port server, when this process bound it
    finishing: tuple[Callable[[StreamRecord], None], ...] = ()

    def serves(self, scope: dict[str, Any]) -> bool:
        """True when ``scope`` asks for the metrics path (behind any ``root_path``)."""
        path: str = scope["path"]
        if not path.endswith(self.metrics_path) or self.metrics_app is None:
            return False
        root: str = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        return path == self.metrics_path


def build_exporters(
    *,
    metrics: bool,
    metrics_path: str | None,
    metrics_port: int | None,
    metrics_host: str,
    metrics_allow: Collection[str] | None,
    metrics_token: str | None,
    registry: CollectorRegistry | None,
    max_series: int,
    otel: bool,
    meter_provider: otel_metrics.MeterProvider | None,
    tracer_provider: trace.TracerProvider | None,
    clock: Clock,
    route: Callable[[dict[str, Any]], str | None] | None = None,
    buckets: MetricBuckets | None = None,
    tenant: Tenant | None = None,
) -> Exporters:
    """Validate the export options and build what they ask for."""
    if buckets is None:
        buckets = DEFAULT_BUCKETS
    elif not isinstance(buckets, MetricBuckets):
        raise TypeError(
            f"buckets={buckets!r} must be a MetricBuckets(...), e.g. "
            "buckets=MetricBuckets(ttft=(0.05, 0.1, 0.2, 0.5, 1.0)), or None for the defaults"
        )
    if metrics_path is not None and not metrics_path.startswith("/"):
        raise ValueError(
            f"metrics_path={metrics_path!r} must start with '/', or be None to serve no "
            "endpoint (default '/metrics')"
        )
    if metrics_port is not None and not 0 < metrics_port < 65536:
        raise ValueError(f"metrics_port={metrics_port!r} must be a TCP port, or None (default)")
    host = check_host(metrics_host)
    guard = None
    networks, token = parse_networks(metrics_allow), check_token(metrics_token)
    if networks is not None or token is not None:
        guard = MetricsGuard(networks, token)
    if max_series < 1:
        raise ValueError(f"max_series={max_series!r} must be >= 1 (default 1000)")
    resolver: Callable[[dict[str, Any]], str] = (
        RouteResolver() if route is None else AppRoute(route)
    )
    observers: list[StreamObserver] = []
    prometheus = otel_observer = None
    if metrics:
        prometheus = PrometheusObserver(
            registry=registry,
            max_series=max_series,
            clock=clock,
            route=resolver,
            buckets=buckets,
            tenant=tenant,
        )
    if otel:
        otel_observer = OTelObserver(
            meter_provider=meter_provider,
            tracer_provider=tracer_provider,
            clock=clock,
            route=resolver,
            max_series=max_series,
            buckets=buckets,
            tenant=tenant,
        )
    if prometheus is not None and otel_observer is not None:
        observers.append(_Both(prometheus, otel_observer))
    elif prometheus is not None:
        observers.append(prometheus)
    elif otel_observer is not None:
        observers.append(otel_observer)
    finishing = () if otel_observer is None else (otel_observer.stream_finishing,)
    if not metrics:
        return Exporters(tuple(observers), None, finishing=finishing)
    server = None if metrics_port is None else _serve_on_port(metrics_port, host, registry)
    app = None if metrics_path is None else MetricsApp(registry, guard)
    return Exporters(tuple(observers), app, metrics_path or "", server, finishing)


def _serve_on_port(port: int, host: str, registry: CollectorRegistry | None) -> WSGIServer | None:
    # Several workers import the app: the first binds, and serves all of them in
    # multiprocess mode; the others find the port taken.
    try:
        server, _thread = start_http_server(port, host, registry=exposition_registry(registry))
    except OSError as exc:
        logger.info("metrics port %s:%d not bound by this process (%s)", host, port, exc)
        return None
    return server
