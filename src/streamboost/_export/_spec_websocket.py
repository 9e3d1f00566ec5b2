"""The export spec of WebSocket connections: the ``streamboost_websocket_*`` families and the
``streamboost.websocket.*`` OpenTelemetry instruments, on ``_spec``'s records.

Read by ``prometheus/_websocket`` (both backends) and ``otel/_websocket``.
"""

from __future__ import annotations

from typing import Final

from ._spec import _P, PHASE_BUCKETS, REQUEST_DURATION_BUCKETS, TTFT_ADVICE, Family, OTelHistogram

# Observed once per connection, at its end; the active gauge at the accept and at the end.
WS_DURATION_BUCKETS: Final = (*REQUEST_DURATION_BUCKETS, 1800.0, 3600.0, 14400.0)
_R: Final = ("route",)
WS_ACTIVE: Final = Family(
    _P + "websocket_connections_active", "WebSocket connections open now.", "gauge", _R
)
WS_CONNECTIONS: Final = Family(
    _P + "websocket_connections",
    "WebSocket connections ended, by close code.",
    "counter",
    ("route", "code"),
)
WS_DURATION: Final = Family(
    _P + "websocket_connection_duration_seconds",
    "Connect to the end of a WebSocket connection.",
    "histogram",
    _R,
    WS_DURATION_BUCKETS,
    "seconds",
)
WS_FIRST_MESSAGE: Final = Family(
    _P + "websocket_time_to_first_message_seconds",
    "Connect to the first message sent to the client.",
    "histogram",
    _R,
    PHASE_BUCKETS,
    "seconds",
)
WS_MESSAGES: Final = Family(
    _P + "websocket_messages",
    "WebSocket messages received from the client (in) and sent by the app (out).",
    "counter",
    ("route", "direction"),
)
WS_WRITES: Final = Family(
    _P + "websocket_writes",
    "WebSocket messages written to the client (a batch array is one).",
    "counter",
    _R,
)
WEBSOCKET_FAMILIES: Final = (
    WS_ACTIVE,
    WS_CONNECTIONS,
    WS_DURATION,
    WS_FIRST_MESSAGE,
    WS_MESSAGES,
    WS_WRITES,
)


# OpenTelemetry (``otel/_websocket``): an up-down counter, three counters, two histograms.
OTEL_WS_ACTIVE: Final = OTelHistogram(
    "streamboost.websocket.active_connections",
    "{connection}",
    "WebSocket connections open now.",
)
OTEL_WS_CONNECTIONS: Final = OTelHistogram(
    "streamboost.websocket.connections",
    "{connection}",
    "WebSocket connections ended, by close code.",
)
OTEL_WS_DURATION: Final = OTelHistogram(
    "streamboost.websocket.connection.duration",
    "s",
    "Connect to the end of a WebSocket connection.",
    WS_DURATION_BUCKETS,
)
OTEL_WS_FIRST_MESSAGE: Final = OTelHistogram(
    "streamboost.websocket.time_to_first_message",
    "s",
    "Connect to the first message sent to the client.",
    TTFT_ADVICE,
)
OTEL_WS_MESSAGES: Final = OTelHistogram(
    "streamboost.websocket.messages",
    "{message}",
    "WebSocket messages received from the client and sent by the app.",
)
OTEL_WS_WRITES: Final = OTelHistogram(
    "streamboost.websocket.writes",
    "{message}",
    "WebSocket messages written to the client (a batch array is one).",
)
