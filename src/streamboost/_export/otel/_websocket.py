"""WebSocket connections in OpenTelemetry: the ``streamboost.websocket.*`` instruments.

Recorded at the accept (the active-connections up-down counter) and once at the end of each
connection (everything else), never per message: the connection counted in plain ints.
"""

from __future__ import annotations

from importlib.metadata import version

from opentelemetry import metrics as otel_metrics

from ..._wsconn import WebSocketRecord, close_class
from .. import _spec_websocket as spec
from .._route import OVERFLOW, SeriesCap
from .._spec import OTelHistogram
from ._tracing import SCOPE_NAME

Attributes = dict[str, str]


class OTelWebSockets:
    """The OpenTelemetry observer: the ``streamboost.websocket.*`` instruments of one meter."""

    def __init__(
        self, *, meter_provider: otel_metrics.MeterProvider | None, max_series: int
    ) -> None:
        lib_version = version("streamboost")
        if meter_provider is None:
            meter = otel_metrics.get_meter(SCOPE_NAME, lib_version)
        else:
            meter = meter_provider.get_meter(SCOPE_NAME, lib_version)
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
            closed = {"http.route": OVERFLOW, "streamboost.websocket.close_code": close_class(code)}
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


def _args(i: OTelHistogram) -> dict[str, str]:
    return {"name": i.name, "unit": i.unit, "description": i.description}
