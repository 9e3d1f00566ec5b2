"""Span timing: the attributes and ``first_token`` event on a span, one request span, phases.

Spans are written once a response has ended (or, for an open server span, just before its last
body message), never per chunk, with explicit start and end times from the record.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any, Final

from opentelemetry import propagate, trace
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from ..._timing import OUTCOME_COMPLETED, OUTCOME_ERROR, OUTCOME_NO_TOKEN, Clock, StreamRecord
from ._histograms import Attributes
from ._tracing import Tracers

ANNOTATED: Final = "streamboost.outcome"  # an attribute every annotated span has


class _HeaderGetter(Getter[dict[str, Any]]):
    """Reads W3C trace headers from an ASGI scope (only when a span is made here)."""

    def get(self, carrier: dict[str, Any], key: str) -> list[str] | None:
        raw = key.lower().encode("latin-1")
        values = [v.decode("latin-1") for n, v in carrier.get("headers", ()) if n.lower() == raw]
        return values or None

    def keys(self, carrier: dict[str, Any]) -> list[str]:
        return [n.decode("latin-1") for n, _ in carrier.get("headers", ())]


_GETTER: Final = _HeaderGetter()


def request_span(
    tracer: trace.Tracer,
    record: StreamRecord,
    name: str,
    http_attrs: Attributes,
    end: float,
    clock: Clock,
) -> Span:
    """One SERVER span for the request (parent from its W3C headers), written and ended."""
    to_ns = epoch_ns(clock)
    parent = propagate.extract(record.scope, getter=_GETTER)
    span = tracer.start_span(
        name,
        context=parent,
        kind=SpanKind.SERVER,
        attributes=http_attrs,
        start_time=to_ns(record.request_at),
    )
    annotate(span, record, end, clock, tracer)
    span.end(end_time=to_ns(end))
    return span


def annotate(
    span: Span,
    record: StreamRecord,
    end: float,
    clock: Clock,
    tracer: trace.Tracer | Tracers | None,
) -> None:
    """The timing attributes, ``first_token`` event, error status and phase children."""
    start = record.request_at
    to_ns = epoch_ns(clock)
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
        if isinstance(tracer, Tracers):
            tracer = tracer.current()
        if tracer is not None:
            _phase_spans(tracer, span, record)


def _timing_attributes(record: StreamRecord, end: float) -> dict[str, Any]:
    start = record.request_at
    outcome = record.outcome
    if outcome == OUTCOME_COMPLETED and record.streaming and not record.content_events:
        outcome = OUTCOME_NO_TOKEN  # before the middleware's end-of-stream verdict
    attrs: dict[str, Any] = {
        "http.response.body.size": record.bytes_out,
        ANNOTATED: outcome,
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
    to_ns = epoch_ns(time.perf_counter)
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


def epoch_ns(clock: Clock) -> Callable[[float], int]:
    """Converts readings of ``clock`` (seconds) to epoch nanoseconds, as spans need."""
    offset = time.time_ns() - int(clock() * 1e9)
    return lambda reading: offset + int(reading * 1e9)
