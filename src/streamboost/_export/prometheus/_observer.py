"""Prometheus export: the stream observer and the ``/metrics`` endpoint.

Every per-response figure is observed once, when the response has ended; the only update at
response start is the active-streams gauge. In one process the figures are plain numbers
exported by a custom Collector (``_fast_backend``); in multiprocess mode
(``PROMETHEUS_MULTIPROC_DIR`` set before the process starts) they are prometheus_client's
file-backed values (``_client_backend``), and ``/metrics`` sums every worker's files with a
``MultiProcessCollector``, after removing the live gauges of dead workers' slots
(``_multiprocess``). Exemplars are not available in multiprocess mode.
"""

from __future__ import annotations

import gzip
import os
import weakref
from collections.abc import Callable, Iterable
from typing import Any, Final, Protocol

from anyio import to_thread
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from ..._stream import DEFAULT_CLOCK, OUTCOME_CLIENT_DISCONNECTED, Clock, StreamRecord
from .._buckets import DEFAULT_BUCKETS, MetricBuckets
from .._route import METHOD_LABELS, OTHER_METHOD, OVERFLOW, RouteResolver, SeriesCap, status_class
from .._tokens import Tenant
from ..otel._tracing import current_trace_id, get_current
from . import _int_sync, _multiprocess
from ._client_backend import ClientBackend
from ._fast_backend import FastBackend
from ._guard import MetricsGuard
from ._multiprocess import multiprocess_dir
from ._tokens import PrometheusTokens

# Status label of a request that ended before any response start.
_STATUS_DISCONNECTED: Final = 499
_STATUS_ERROR: Final = 500


class Series(Protocol):
    def start(self) -> None: ...

    def end(self, record: StreamRecord, duration: float, trace_id: str | None) -> None: ...


class Backend(Protocol):
    buckets: MetricBuckets

    # A series' end as a function of the series (the fast backend's may be C: _fast_backend).
    @property
    def series_end(self) -> Callable[[Any, StreamRecord, float, str | None], None]: ...

    def new_series(self, method: str, route: str, status: str) -> Series: ...

    def phase(self, route: str, name: str, seconds: float, fallback: str | None) -> None: ...


# One backend per registry: StreamBoost instances on one registry share its series.
_backends: weakref.WeakKeyDictionary[CollectorRegistry, Backend] = weakref.WeakKeyDictionary()


def backend_for(
    registry: CollectorRegistry | None, buckets: MetricBuckets = DEFAULT_BUCKETS
) -> Backend:
    target = REGISTRY if registry is None else registry
    backend = _backends.get(target)
    if backend is None:
        if multiprocess_dir() is not None:
            _multiprocess.install()  # before the first value: file-backed, named by slot
            backend = ClientBackend(target, buckets)
        else:
            _multiprocess.check_single_process()
            fast = FastBackend(buckets)
            target.register(fast)
            backend = fast
        _backends[target] = backend
    elif backend.buckets != buckets:
        # A family has one set of buckets: the second StreamBoost cannot have its own.
        raise ValueError(
            f"buckets={buckets!r} differ from those of the streamboost families already in "
            f"this registry ({backend.buckets!r}); pass the same buckets= to every StreamBoost "
            "on one registry, or give this one its own registry=CollectorRegistry()"
        )
    return backend


class PrometheusObserver:
    """A ``StreamObserver`` that turns each ``StreamRecord`` into ``streamboost_*`` samples.

    Args:
        registry: where the families live (None: prometheus_client's default ``REGISTRY``).
        max_series: distinct (method, route, status) label sets before new ones are labelled
            ``(method, "overflow", status class)``; (route, phase) sets before new ones are
            ``("overflow", "overflow")``.
        exemplars: attach the active trace id to duration and TTFT samples.
        clock: the middleware's clock, for requests that ended without a body.
        route: maps a scope to its route label (default: the route template).
        buckets: the latency families' histogram buckets (one set per registry).
        tenant: ``(scope) -> str | None``, the ``tenant`` label of ``streamboost_tokens_total``
            (None: no such label).
    """

    def __init__(
        self,
        *,
        registry: CollectorRegistry | None = None,
        max_series: int = 1000,
        exemplars: bool = True,
        clock: Clock = DEFAULT_CLOCK,
        route: Callable[[dict[str, Any]], str] | None = None,
        buckets: MetricBuckets = DEFAULT_BUCKETS,
        tenant: Tenant | None = None,
    ) -> None:
        self._backend = backend_for(registry, buckets)
        self._series_end = self._backend.series_end
        self._tokens = PrometheusTokens(registry, max_series, tenant)
        self._cap = SeriesCap(max_series)
        self._phase_cap = SeriesCap(max_series)
        self._route = route or RouteResolver()
        self._series: dict[tuple[str, str, int], Series] = {}
        self._overflow: dict[tuple[str, str, str], Series] = {}
        self.exemplars = exemplars and multiprocess_dir() is None
        self._clock = clock

    def _lookup(self, record: StreamRecord) -> Series:
        cached = record.series
        if cached is not None and cached[0] is self:  # found at the response start
            return cached[1]  # type: ignore[return-value]
        status = record.status
        if not status:  # no response start: what the status label will say instead
            disconnected = record.outcome == OUTCOME_CLIENT_DISCONNECTED
            status = _STATUS_DISCONNECTED if disconnected else _STATUS_ERROR
        resolver, cached_route = self._route, record.route  # route_label, inlined
        if cached_route is not None and cached_route[0] is resolver:
            route = cached_route[1]
        else:
            route = resolver(record.scope)
            record.route = (resolver, route)
        # Keyed by the status number: its label string is only made for a new key.
        key = (METHOD_LABELS.get(record.method, OTHER_METHOD), route, status)
        series = self._series.get(key)
        if series is None:
            series = self._new_series(key)
        if record.headers_at is not None:
            record.series = (self, series)  # the status can no longer change
        return series

    def _new_series(self, key: tuple[str, str, int]) -> Series:
        method, route, status = key
        labels = (method, route, str(status))
        if self._cap.admit(labels):
            # Only admitted keys are cached, so the cache is bounded like the series.
            series = self._series[key] = self._backend.new_series(*labels)
            return series
        # Full: every unbounded label collapses, so at most 10 methods x 6 status classes.
        labels = (method, OVERFLOW, status_class(status))
        overflow = self._overflow.get(labels)
        if overflow is None:
            overflow = self._overflow[labels] = self._backend.new_series(*labels)
        return overflow

    def stream_started(self, record: StreamRecord) -> None:
        series = self._lookup(record)
        if record.streaming:
            series.start()

    def stream_ended(self, record: StreamRecord) -> None:
        # current_trace_id's first test, inlined: outside a trace the context is empty.
        trace_id = current_trace_id() if self.exemplars and get_current() else None
        self.observe(record, trace_id)

    def observe(self, record: StreamRecord, trace_id: str | None) -> None:
        end = record.last_body_at
        if end is None:
            end = self._clock()
        cached = record.series  # _lookup's first test, inlined: set at the response start
        series = cached[1] if cached is not None and cached[0] is self else self._lookup(record)
        self._series_end(series, record, end - record.request_at, trace_id)
        if record.phases:
            route = record.route_label(self._route)
            for timing in record.phases:
                route_label, name = route, timing.name
                if not self._phase_cap.admit((route, name)):
                    route_label = name = OVERFLOW  # one overflow series, whatever the names
                seconds = timing.ended_at - timing.started_at
                self._backend.phase(route_label, name, seconds, timing.fallback)
        if record.usage is not None:
            self._tokens.observe(record, record.route_label(self._route))


class MetricsApp:
    """The ``/metrics`` ASGI endpoint: text format, or OpenMetrics (with exemplars) on request.

    In multiprocess mode it serves every worker's values, aggregated from the files in
    ``PROMETHEUS_MULTIPROC_DIR``; else the given registry.
    """

    def __init__(
        self, registry: CollectorRegistry | None = None, guard: MetricsGuard | None = None
    ) -> None:
        self.registry: Collector = exposition_registry(registry)
        self.guard = guard

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        refused = None if self.guard is None else self.guard.refusal(scope)
        if refused is not None:
            await _refuse(send, refused)
            return
        if scope["method"] not in ("GET", "HEAD"):
            allow = [(b"allow", b"GET, HEAD")]
            await _respond(send, 405, b"text/plain; charset=utf-8", b"use GET\n", allow)
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
    aggregate.register(_WorkerFiles(directory))
    return aggregate


async def _refuse(send: Any, status: int) -> None:
    if status == 401:
        headers = [(b"www-authenticate", b'Bearer realm="metrics"')]
        await _respond(send, 401, b"text/plain; charset=utf-8", b"bearer token required\n", headers)
    else:
        await _respond(send, 403, b"text/plain; charset=utf-8", b"forbidden\n", [])


class _WorkerFiles(Collector):
    """Every worker's files, summed; dead slots' live gauges are dropped first."""

    def __init__(self, directory: str) -> None:
        self._directory = directory
        self._files = MultiProcessCollector(None, path=directory)  # type: ignore[no-untyped-call]

    def collect(self) -> Iterable[Any]:
        _int_sync.sync_all()  # this worker's cache and deferred counts, up to now
        _multiprocess.reap_dead_slots(self._directory)
        result: Iterable[Any] = self._files.collect()  # type: ignore[no-untyped-call]
        return result


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
