"""OpenTelemetry export: GenAI and HTTP server metrics, and timing on one span per request.

Metrics go through the given MeterProvider, else the global one (a provider installed after
StreamBoost was built is picked up: the API's proxy meter delegates to it). Traces never get a
span per chunk: when a server span is active (opentelemetry-instrumentation-asgi around
StreamBoost), it gets a ``first_token`` event and the timing attributes; otherwise, when a
real TracerProvider is configured (``_tracing``), one SERVER span per request is written once
the response has ended, with explicit start and end times (``_spans``). Phases become child
spans either way.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import version
from typing import Any

from opentelemetry import metrics, trace

from ..._stream import DEFAULT_CLOCK, Clock, StreamRecord
from .._buckets import DEFAULT_BUCKETS, MetricBuckets
from .._route import METHOD_LABELS, OTHER_METHOD, OVERFLOW, RouteResolver, SeriesCap, status_class
from .._tokens import Tenant
from ._histograms import HTTP_ADVICE as HTTP_ADVICE
from ._histograms import TPOT_ADVICE as TPOT_ADVICE
from ._histograms import TTFT_ADVICE as TTFT_ADVICE
from ._histograms import Attributes, StreamHistograms
from ._spans import ANNOTATED, annotate, request_span
from ._tokens import OTelTokens
from ._tracing import SCOPE_NAME, Tracers, get_current, sampled_trace_id


class OTelObserver:
    """A ``StreamObserver`` recording OpenTelemetry metrics and span timing per response.

    Args:
        meter_provider: None for the global MeterProvider.
        tracer_provider: None for the global TracerProvider; tracing is off while that is the
            API's default (no SDK installed).
        clock: the middleware's clock (span times are converted from it to epoch time).
        max_series: distinct (method, route, status) attribute sets before new ones are
            recorded as ``http.route="overflow"`` without a status code (like Prometheus).
        buckets: bucket advice for the three histograms (``MetricBuckets.otel_advice``).
        tenant: ``(scope) -> str | None``, the ``streamboost.tenant`` attribute of the token
            histogram (None: no such attribute).
    """

    def __init__(
        self,
        *,
        meter_provider: metrics.MeterProvider | None = None,
        tracer_provider: trace.TracerProvider | None = None,
        clock: Clock = DEFAULT_CLOCK,
        route: Callable[[dict[str, Any]], str] | None = None,
        max_series: int = 1000,
        buckets: MetricBuckets = DEFAULT_BUCKETS,
        tenant: Tenant | None = None,
    ) -> None:
        lib_version = version("streamboost")
        if meter_provider is None:
            meter = metrics.get_meter(SCOPE_NAME, lib_version)
        else:
            meter = meter_provider.get_meter(SCOPE_NAME, lib_version)
        self._histograms = StreamHistograms(meter, buckets)
        self._tokens = OTelTokens(meter, max_series, tenant)
        self._tracers = Tracers(tracer_provider, lib_version)
        self._clock = clock
        self._route = route or RouteResolver()
        # Attribute dicts per admitted label key, built once: the SDK hashes them per record.
        self._attrs: dict[tuple[str, str, int], tuple[Attributes, Attributes]] = {}
        self._cap = SeriesCap(max_series)

    def stream_started(self, record: StreamRecord) -> None:
        pass

    def stream_finishing(self, record: StreamRecord) -> None:
        """Annotate an open server span before the last body message ends it."""
        context = get_current()
        if not context:  # no span (nor anything else) in the context: the usual case
            return
        span = trace.get_current_span(context)
        if span.is_recording():
            end = record.last_body_at
            end = self._clock() if end is None else end
            annotate(span, record, end, self._clock, self._tracers)

    def stream_ended(self, record: StreamRecord) -> None:
        self.observe(record)

    def observe(self, record: StreamRecord) -> str | None:
        """Record ``record``; return the trace id (hex) its timing went to, if sampled."""
        method = METHOD_LABELS.get(record.method, OTHER_METHOD)
        resolver, cached = self._route, record.route  # route_label's cache test, inlined:
        # the Prometheus observer resolved it at the response start, with the same resolver
        route = cached[1] if cached is not None and cached[0] is resolver else None
        if route is None:
            route = record.route_label(resolver)
        key = (method, route, record.status)
        attrs = self._attrs.get(key)
        if attrs is None:
            attrs = self._attributes(key)
        http_attrs, token_attrs = attrs
        start = record.request_at
        end = record.last_body_at
        if end is None:
            end = self._clock()
        first = record.first_token_at
        ttft = tpot = None
        if first is not None:
            ttft = first - start
            last, content = record.last_token_at, record.content_events
            if content > 1 and last is not None:  # record.time_per_output_token(), inlined
                tpot = (last - first) / (content - 1)
        context = get_current()
        self._histograms.add(http_attrs, token_attrs, end - start, ttft, tpot, context)
        if record.usage is not None:
            self._tokens.observe(record, route)

        if context:  # else no span at all, the usual case: the span lookups are skipped
            span = trace.get_current_span(context)
            if span.is_recording():
                # A server span still open: annotated now unless stream_finishing did (it did
                # not run when the response ended without its last body message: error,
                # disconnect).
                if ANNOTATED not in (getattr(span, "attributes", None) or ()):
                    annotate(span, record, end, self._clock, self._tracers)
                return sampled_trace_id(span)
            if span.get_span_context().is_valid:
                # A server span annotated by stream_finishing and since ended, or not sampled.
                return sampled_trace_id(span)
        tracer = self._tracers.current()
        if tracer is None:
            return None
        span = request_span(tracer, record, f"{method} {route}", http_attrs, end, self._clock)
        return sampled_trace_id(span)

    def _attributes(self, key: tuple[str, str, int]) -> tuple[Attributes, Attributes]:
        method, route, status = key
        admitted = self._cap.admit((method, route, str(status)))
        token_attrs: Attributes = {
            "http.request.method": method,
            "http.route": route if admitted else OVERFLOW,
        }
        if admitted:
            http_attrs: Attributes = {**token_attrs, "http.response.status_code": status}
            if status >= 500 or not status:
                http_attrs["error.type"] = str(status or 500)
            self._attrs[key] = (http_attrs, token_attrs)  # bounded by the cap
            return http_attrs, token_attrs
        # Full: the status code (an int attribute) cannot become a class, so it is left out;
        # error.type keeps the class of a failure: 10 methods x 2 sets at most.
        http_attrs = dict(token_attrs)
        if status >= 500 or not status:
            http_attrs["error.type"] = status_class(status or 500)
        return http_attrs, token_attrs
