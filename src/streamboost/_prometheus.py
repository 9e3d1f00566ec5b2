"""Prometheus export: the ``streamboost_*`` families, the stream observer, ``/metrics``.

Every per-response figure is observed once, when the response has ended; the only call at
response start is the active-streams gauge. Label children are bound once per label key and
cached, so an observation is a dict lookup plus prometheus_client's own increment.

Multiprocess mode (``PROMETHEUS_MULTIPROC_DIR`` set before the process starts): prometheus_client
then keeps every value in per-process files, and ``/metrics`` aggregates all workers' files
with a ``MultiProcessCollector``. Exemplars are not available in that mode.
"""

from __future__ import annotations

import gzip
import os
import weakref
from collections.abc import Callable
from typing import Any, Final

from anyio import to_thread
from opentelemetry import trace
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from ._route import RouteResolver, SeriesCap, method_label
from ._timing import (
    DEFAULT_CLOCK,
    OUTCOME_CLIENT_DISCONNECTED,
    OUTCOME_COMPLETED,
    OUTCOME_ERROR,
    OUTCOME_NO_TOKEN,
    Clock,
    StreamRecord,
)

# OpenTelemetry GenAI time-to-first-token advice, extended to a minute for slow models.
TTFT_BUCKETS: Final = (
    *(0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0),
    *(7.5, 10.0, 20.0, 30.0, 60.0),
)
# OpenTelemetry GenAI time-per-output-token advice.
TPOT_BUCKETS: Final = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5)
# OpenTelemetry HTTP duration advice, extended to the length of long streams.
DURATION_BUCKETS: Final = (
    *(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0),
    *(20.0, 30.0, 60.0, 120.0, 300.0, 600.0),
)
OUTCOMES: Final = (OUTCOME_COMPLETED, OUTCOME_CLIENT_DISCONNECTED, OUTCOME_ERROR, OUTCOME_NO_TOKEN)
# Status label of a request that ended before any response start.
_STATUS_DISCONNECTED: Final = "499"
_STATUS_ERROR: Final = "500"

_MR = ("method", "route")
_MRS = ("method", "route", "status")


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class Families:
    """The ``streamboost_*`` stream families registered in one registry."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        r = registry
        p = "streamboost_"
        self.requests = Counter(p + "http_requests_total", "HTTP responses.", _MRS, registry=r)
        self.duration = Histogram(
            p + "http_request_duration_seconds",
            "Request to the last body chunk (background tasks excluded).",
            _MRS,
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.ttfb = Histogram(
            p + "time_to_first_byte_seconds",
            "Request to the first body byte.",
            _MR,
            buckets=TTFT_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            p + "time_to_first_token_seconds",
            "Request to the first content event of a stream.",
            _MR,
            buckets=TTFT_BUCKETS,
            registry=r,
        )
        self.tpot = Histogram(
            p + "time_per_output_token_seconds",
            "(last content event - first) / (content events - 1).",
            _MR,
            buckets=TPOT_BUCKETS,
            registry=r,
        )
        self.stream_duration = Histogram(
            p + "stream_duration_seconds",
            "Request to the last body chunk of a stream.",
            _MR,
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.events = Counter(
            p + "stream_events_total", "Events the app streamed.", _MR, registry=r
        )
        self.writes = Counter(
            p + "stream_writes_total", "Body writes to the server.", _MR, registry=r
        )
        self.bytes = Counter(p + "response_bytes_total", "Body bytes sent.", _MR, registry=r)
        self.active = Gauge(
            p + "streams_active",
            "Streams in flight.",
            _MR,
            multiprocess_mode="livesum",
            registry=r,
        )
        self.streams = Counter(
            p + "streams_total", "Streams by outcome.", (*_MR, "outcome"), registry=r
        )
        self.phase = Histogram(
            p + "phase_duration_seconds",
            "Work before the first token, by phase.",
            ("route", "phase"),
            buckets=TTFT_BUCKETS,
            registry=r,
        )
        self.fallbacks = Counter(
            p + "phase_fallbacks_total",
            "Phases that used their fallback.",
            ("route", "phase", "reason"),
            registry=r,
        )


# One family set per registry: two StreamBoost instances on one registry share it instead of
# failing with "Duplicated timeseries".
_families: weakref.WeakKeyDictionary[CollectorRegistry, Families] = weakref.WeakKeyDictionary()


def families_for(registry: CollectorRegistry | None) -> Families:
    target = REGISTRY if registry is None else registry
    families = _families.get(target)
    if families is None:
        families = _families[target] = Families(target)
    return families


class _Series:
    """The label children of one (method, route, status), bound once."""

    __slots__ = (
        "active",
        "bytes",
        "duration",
        "events",
        "outcomes",
        "requests",
        "stream_duration",
        "tpot",
        "ttfb",
        "ttft",
        "writes",
    )

    def __init__(self, f: Families, method: str, route: str, status: str) -> None:
        self.requests = f.requests.labels(method, route, status)
        self.duration = f.duration.labels(method, route, status)
        self.ttfb = f.ttfb.labels(method, route)
        self.ttft = f.ttft.labels(method, route)
        self.tpot = f.tpot.labels(method, route)
        self.stream_duration = f.stream_duration.labels(method, route)
        self.events = f.events.labels(method, route)
        self.writes = f.writes.labels(method, route)
        self.bytes = f.bytes.labels(method, route)
        self.active = f.active.labels(method, route)
        self.outcomes = {o: f.streams.labels(method, route, o) for o in OUTCOMES}


def current_trace_id() -> str | None:
    """The active span's trace id in hex, for exemplars; None outside a sampled trace."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid or not context.trace_flags.sampled:
        return None
    return format(context.trace_id, "032x")


class PrometheusObserver:
    """A ``StreamObserver`` that turns each ``StreamRecord`` into ``streamboost_*`` samples.

    Args:
        registry: where the families live (None: prometheus_client's default ``REGISTRY``).
        max_series: distinct (method, route, status) label sets before new routes are
            labelled ``overflow``.
        exemplars: attach the active trace id to duration and TTFT samples.
        clock: the middleware's clock, for requests that ended without a body.
    """

    def __init__(
        self,
        *,
        registry: CollectorRegistry | None = None,
        max_series: int = 1000,
        exemplars: bool = True,
        clock: Clock = DEFAULT_CLOCK,
        route: Callable[[dict[str, Any]], str] | None = None,
    ) -> None:
        self.families = families_for(registry)
        self._cap = SeriesCap(max_series)
        self._phase_cap = SeriesCap(max_series)
        self._route = route or RouteResolver()
        self._series: dict[tuple[str, str, str], _Series] = {}
        self.exemplars = exemplars and multiprocess_dir() is None
        self._clock = clock

    def _lookup(self, record: StreamRecord) -> _Series:
        status = record.status
        if status:
            status_label = str(status)
        elif record.outcome == OUTCOME_CLIENT_DISCONNECTED:
            status_label = _STATUS_DISCONNECTED
        else:
            status_label = _STATUS_ERROR
        key = (method_label(record.method), self._route(record.scope), status_label)
        series = self._series.get(key)
        if series is None:
            # Only admitted keys are cached, so the cache is bounded like the series.
            key = self._cap.admit(key, 1)  # type: ignore[assignment]
            series = self._series.get(key)
            if series is None:
                series = self._series[key] = _Series(self.families, *key)
        return series

    def stream_started(self, record: StreamRecord) -> None:
        if record.streaming:
            self._lookup(record).active.inc()

    def stream_ended(self, record: StreamRecord) -> None:
        self.observe(record, current_trace_id() if self.exemplars else None)

    def observe(self, record: StreamRecord, trace_id: str | None) -> None:
        s = self._lookup(record)
        start = record.request_at
        end = record.last_body_at
        if end is None:
            end = self._clock()
        exemplar = {"trace_id": trace_id} if trace_id else None
        duration = end - start
        s.requests.inc()
        s.duration.observe(duration, exemplar)
        if record.first_byte_at is not None:
            s.ttfb.observe(record.first_byte_at - start)
        if record.bytes_out:
            s.bytes.inc(record.bytes_out)
        if record.streaming:
            if record.headers_at is not None:
                s.active.dec()
            s.stream_duration.observe(duration, exemplar)
            s.outcomes[record.outcome].inc()
            if record.events:
                s.events.inc(record.events)
            s.writes.inc(record.writes)
            if record.first_token_at is not None:
                s.ttft.observe(record.first_token_at - start, exemplar)
                tpot = record.time_per_output_token()
                if tpot is not None:
                    s.tpot.observe(tpot)
        if record.phases:
            self._observe_phases(record)

    def _observe_phases(self, record: StreamRecord) -> None:
        f = self.families
        route = self._route(record.scope)
        for timing in record.phases or ():
            route_label, name = self._phase_cap.admit((route, timing.name), 0)
            f.phase.labels(route_label, name).observe(timing.ended_at - timing.started_at)
            if timing.fallback is not None:
                f.fallbacks.labels(route_label, name, timing.fallback).inc()


class MetricsApp:
    """The ``/metrics`` ASGI endpoint: text format, or OpenMetrics (with exemplars) on request.

    In multiprocess mode it serves every worker's values, aggregated from the files in
    ``PROMETHEUS_MULTIPROC_DIR``; else the given registry.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry: Collector = exposition_registry(registry)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["method"] not in ("GET", "HEAD"):
            await _respond(send, 405, b"text/plain; charset=utf-8", b"use GET\n", [])
            return
        accept = accept_encoding = b""
        for name, value in scope.get("headers", ()):
            name = name.lower()
            if name == b"accept":
                accept = value
            elif name == b"accept-encoding":
                accept_encoding = value
        encoder, content_type = choose_encoder(accept.decode("latin-1"))
        # Collecting walks every series (and, multiprocess, reads files): off the event loop.
        body = await to_thread.run_sync(encoder, self.registry)
        extra: list[tuple[bytes, bytes]] = []
        if b"gzip" in accept_encoding:
            body = gzip.compress(body, compresslevel=1)
            extra.append((b"content-encoding", b"gzip"))
        await _respond(send, 200, content_type.encode("latin-1"), body, extra, scope["method"])


def exposition_registry(registry: CollectorRegistry | None) -> Collector:
    """What ``/metrics`` serves: all workers' files in multiprocess mode, else ``registry``."""
    directory = multiprocess_dir()
    if directory is None:
        return REGISTRY if registry is None else registry
    if not os.path.isdir(directory):
        raise ValueError(
            f"PROMETHEUS_MULTIPROC_DIR={directory!r} is not a directory; create it (empty) "
            "before the workers start, or unset it for single-process metrics"
        )
    aggregate = CollectorRegistry(auto_describe=True)
    MultiProcessCollector(aggregate, path=directory)  # type: ignore[no-untyped-call]
    return aggregate


async def _respond(
    send: Any,
    status: int,
    content_type: bytes,
    body: bytes,
    extra: list[tuple[bytes, bytes]],
    method: str = "GET",
) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers + extra})
    await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})
