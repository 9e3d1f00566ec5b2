"""OpenTelemetry export: GenAI and HTTP server metrics, and timing on one span per request.

Metrics go through the given MeterProvider, else the global one (a provider installed after
StreamBoost was built is picked up: the API's proxy meter delegates to it). Traces never get a
span per chunk: when a server span is active (opentelemetry-instrumentation-asgi around
StreamBoost), it gets a ``first_token`` event and the timing attributes; otherwise, when a
real TracerProvider is configured, one SERVER span per request is written once the response
has ended, with explicit start and end times. Phases become child spans either way.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from importlib.metadata import version
from typing import Any, Final

from opentelemetry import metrics, propagate, trace
from opentelemetry.context import get_current
from opentelemetry.environment_variables import OTEL_PYTHON_TRACER_PROVIDER
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import INVALID_SPAN, Span, SpanKind, Status, StatusCode

from ..._timing import (
    DEFAULT_CLOCK,
    OUTCOME_COMPLETED,
    OUTCOME_ERROR,
    OUTCOME_NO_TOKEN,
    Clock,
    StreamRecord,
)
from .._buckets import DEFAULT_BUCKETS, MetricBuckets
from .._route import METHOD_LABELS, OTHER_METHOD, OVERFLOW, RouteResolver, SeriesCap, status_class
from ._histograms import HTTP_ADVICE as HTTP_ADVICE
from ._histograms import TPOT_ADVICE as TPOT_ADVICE
from ._histograms import TTFT_ADVICE as TTFT_ADVICE
from ._histograms import Attributes, StreamHistograms

_SCOPE_NAME: Final = "streamboost"
_ANNOTATED: Final = "streamboost.outcome"  # an attribute every annotated span has
_NO_TRACING: Final = (trace.ProxyTracerProvider, trace.NoOpTracerProvider)
# ``get_tracer_provider()`` looks in os.environ on every call while no provider is set (~0.8
# us). The API's module global is what it returns once one is; read directly when it exists.
_GLOBAL_PROVIDER: Final = hasattr(trace, "_TRACER_PROVIDER")


class _HeaderGetter(Getter[dict[str, Any]]):
    """Reads W3C trace headers from an ASGI scope (only when a span is made here)."""

    def get(self, carrier: dict[str, Any], key: str) -> list[str] | None:
        raw = key.lower().encode("latin-1")
        values = [v.decode("latin-1") for n, v in carrier.get("headers", ()) if n.lower() == raw]
        return values or None

    def keys(self, carrier: dict[str, Any]) -> list[str]:
        return [n.decode("latin-1") for n, _ in carrier.get("headers", ())]


_GETTER: Final = _HeaderGetter()


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
    ) -> None:
        lib_version = version("streamboost")
        if meter_provider is None:
            meter = metrics.get_meter(_SCOPE_NAME, lib_version)
        else:
            meter = meter_provider.get_meter(_SCOPE_NAME, lib_version)
        self._histograms = StreamHistograms(meter, buckets)
        self._tracer_provider = tracer_provider
        # An environment-configured provider is loaded by the API on the first
        # get_tracer_provider() call; only then is that call needed while none is set.
        self._env_provider = not _GLOBAL_PROVIDER or OTEL_PYTHON_TRACER_PROVIDER in os.environ
        # The provider last seen and its tracer (None: tracing is off), so a request costs an
        # identity check instead of an ABC isinstance.
        self._tracer: tuple[trace.TracerProvider, trace.Tracer | None] | None = None
        self._version = lib_version
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
            self._annotate(span, record, self._clock() if end is None else end)

    def stream_ended(self, record: StreamRecord) -> None:
        self.observe(record)

    def observe(self, record: StreamRecord) -> str | None:
        """Record ``record``; return the trace id (hex) its timing went to, if sampled."""
        method = METHOD_LABELS.get(record.method, OTHER_METHOD)
        route = record.route_label(self._route)
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
        context = get_current()
        self._histograms.add(
            http_attrs,
            token_attrs,
            end - start,
            None if first is None else first - start,
            record.time_per_output_token(),
            context,
        )

        if context:  # else no span at all, the usual case: the span lookups are skipped
            span = trace.get_current_span(context)
            if span.is_recording():
                # A server span still open: annotated now unless stream_finishing did (it did
                # not run when the response ended without its last body message: error,
                # disconnect).
                if _ANNOTATED not in (getattr(span, "attributes", None) or ()):
                    self._annotate(span, record, end)
                return _sampled_trace_id(span)
            if span.get_span_context().is_valid:
                # A server span annotated by stream_finishing and since ended, or not sampled.
                return _sampled_trace_id(span)
        tracer = self._current_tracer()
        if tracer is None:
            return None
        return _sampled_trace_id(self._request_span(tracer, record, method, route, http_attrs, end))

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

    def _current_tracer(self) -> trace.Tracer | None:
        provider = self._tracer_provider
        if provider is None:
            if _GLOBAL_PROVIDER:
                provider = trace._TRACER_PROVIDER
            if provider is None:
                if not self._env_provider:
                    return None  # what the API's default ProxyTracerProvider means
                provider = trace.get_tracer_provider()
        cached = self._tracer
        if cached is None or cached[0] is not provider:
            tracer = None
            if not isinstance(provider, _NO_TRACING):
                tracer = provider.get_tracer(_SCOPE_NAME, self._version)
            cached = self._tracer = (provider, tracer)
        return cached[1]

    def _request_span(
        self,
        tracer: trace.Tracer,
        record: StreamRecord,
        method: str,
        route: str,
        http_attrs: Attributes,
        end: float,
    ) -> Span:
        to_ns = _epoch_ns(self._clock)
        parent = propagate.extract(record.scope, getter=_GETTER)
        span = tracer.start_span(
            f"{method} {route}",
            context=parent,
            kind=SpanKind.SERVER,
            attributes=http_attrs,
            start_time=to_ns(record.request_at),
        )
        self._annotate(span, record, end, tracer)
        span.end(end_time=to_ns(end))
        return span

    def _annotate(
        self, span: Span, record: StreamRecord, end: float, tracer: trace.Tracer | None = None
    ) -> None:
        start = record.request_at
        to_ns = _epoch_ns(self._clock)
        span.set_attributes(_timing_attributes(record, end))
        if record.first_token_at is not None:
            span.add_event(
                "first_token",
                {"streamboost.time_to_first_token": record.first_token_at - start},
                timestamp=to_ns(record.first_token_at),
            )
        if record.outcome == OUTCOME_ERROR:
            span.set_status(Status(StatusCode.ERROR, "the app failed"))
        if record.phases:
            tracer = tracer or self._current_tracer()
            if tracer is not None:
                _phase_spans(tracer, span, record)


def current_trace_id() -> str | None:
    """The active span's trace id in hex, for exemplars; None outside a sampled trace."""
    current = get_current()
    if not current:  # an empty context, the usual case: no span to look up
        return None
    span = trace.get_current_span(current)
    if span is INVALID_SPAN:  # other entries, no span: no span context to read
        return None
    return _sampled_trace_id(span)


def _sampled_trace_id(span: Span) -> str | None:
    context = span.get_span_context()
    if not context.is_valid or not context.trace_flags.sampled:
        return None
    return format(context.trace_id, "032x")


def _timing_attributes(record: StreamRecord, end: float) -> dict[str, Any]:
    start = record.request_at
    outcome = record.outcome
    if outcome == OUTCOME_COMPLETED and record.streaming and not record.content_events:
        outcome = OUTCOME_NO_TOKEN  # before the middleware's end-of-stream verdict
    attrs: dict[str, Any] = {
        "http.response.body.size": record.bytes_out,
        "streamboost.outcome": outcome,
        "streamboost.duration": end - start,
    }
    if record.first_byte_at is not None:
        attrs["streamboost.time_to_first_byte"] = record.first_byte_at - start
    if record.streaming:
        attrs["streamboost.events"] = record.events
        attrs["streamboost.writes"] = record.writes
        if record.first_token_at is not None:
            attrs["streamboost.time_to_first_token"] = record.first_token_at - start
        tpot = record.time_per_output_token()
        if tpot is not None:
            attrs["streamboost.time_per_output_token"] = tpot
    return attrs


def _phase_spans(tracer: trace.Tracer, parent: Span, record: StreamRecord) -> None:
    # Phases are timed with time.perf_counter whatever the middleware's clock is.
    to_ns = _epoch_ns(time.perf_counter)
    context = trace.set_span_in_context(parent)
    timings: Iterable[Any] = record.phases or ()
    for timing in timings:
        child = tracer.start_span(
            f"phase {timing.name}",
            context=context,
            attributes={"streamboost.phase": timing.name},
            start_time=to_ns(timing.started_at),
        )
        if timing.fallback is not None:
            child.set_attribute("streamboost.fallback", timing.fallback)
        child.end(end_time=to_ns(timing.ended_at))


def _epoch_ns(clock: Clock) -> Callable[[float], int]:
    """Converts readings of ``clock`` (seconds) to epoch nanoseconds, as spans need."""
    offset = time.time_ns() - int(clock() * 1e9)
    return lambda reading: offset + int(reading * 1e9)
