"""The WebSocket observers StreamBoost's export options ask for (Prometheus, OpenTelemetry)."""

from __future__ import annotations

from opentelemetry import metrics as otel_metrics
from prometheus_client import CollectorRegistry

from .._wsconn import WebSocketObserver
from .otel._websocket import OTelWebSockets
from .prometheus._websocket import PrometheusWebSockets


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
