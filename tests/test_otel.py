"""OpenTelemetry export with the SDK's in-memory reader and exporter (providers per test)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route
from tests.coalesce_apps import run_app
from tests.metrics_apps import SSE, asgi_scope, starlette_app, token

from streamboost import StreamBoost, phase
from streamboost._export.otel._observer import HTTP_ADVICE, TPOT_ADVICE, TTFT_ADVICE

ROUTE = "/stream/{n:int}"


def providers() -> tuple[InMemoryMetricReader, MeterProvider, InMemorySpanExporter, TracerProvider]:
    reader = InMemoryMetricReader()
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    return reader, MeterProvider(metric_readers=[reader]), exporter, tracer_provider


def histograms(reader: InMemoryMetricReader) -> dict[str, tuple[Any, list[HistogramDataPoint]]]:
    data = reader.get_metrics_data()
    assert data is not None
    found = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                found[metric.name] = (metric, list(metric.data.data_points))  # type: ignore[arg-type]
    return found


async def test_metrics_have_semconv_names_units_buckets_and_attributes() -> None:
    reader, meter_provider, _, _ = providers()
    app = StreamBoost(
        starlette_app(),
        registry=CollectorRegistry(),
        meter_provider=meter_provider,
        coalesce=False,
    )
    for _ in range(3):
        await run_app(app, scope=asgi_scope("/stream/4"))
    found = histograms(reader)
    expected = {
        "gen_ai.server.time_to_first_token": TTFT_ADVICE,
        "gen_ai.server.time_per_output_token": TPOT_ADVICE,
        "http.server.request.duration": HTTP_ADVICE,
    }
    assert set(found) == set(expected)
    for name, buckets in expected.items():
        metric, points = found[name]
        assert metric.unit == "s"
        assert len(points) == 1
        assert points[0].count == 3
        assert tuple(points[0].explicit_bounds) == buckets
        assert points[0].attributes["http.route"] == ROUTE
        assert points[0].attributes["http.request.method"] == "GET"
    _, (duration,) = found["http.server.request.duration"]
    assert duration.attributes["http.response.status_code"] == 200
    _, (ttft,) = found["gen_ai.server.time_to_first_token"]
    assert 0 < ttft.sum <= duration.sum


async def test_one_span_per_request_with_first_token_event_and_phases() -> None:
    _, meter_provider, exporter, tracer_provider = providers()

    async def endpoint(request: Request) -> StreamingResponse:
        async with phase("rag"):
            pass

        async def body() -> Any:
            for i in range(50):
                yield token(i)

        return StreamingResponse(body(), media_type=SSE)

    app = StreamBoost(
        Starlette(routes=[Route("/chat/{id}", endpoint)]),
        registry=CollectorRegistry(),
        meter_provider=meter_provider,
        tracer_provider=tracer_provider,
        coalesce=False,
    )
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    scope = asgi_scope("/chat/1", headers=[(b"traceparent", traceparent.encode())])
    await run_app(app, scope=scope)
    spans: list[ReadableSpan] = list(exporter.get_finished_spans())
    # Never a span per chunk: the request and its one phase.
    assert sorted(s.name for s in spans) == ["GET /chat/{id}", "phase rag"]
    request = next(s for s in spans if s.name == "GET /chat/{id}")
    child = next(s for s in spans if s.name == "phase rag")
    assert request.kind == SpanKind.SERVER
    assert format(request.context.trace_id, "032x") == "0af7651916cd43dd8448eb211c80319c"
    assert child.parent is not None and child.parent.span_id == request.context.span_id
    assert [e.name for e in request.events] == ["first_token"]
    attributes = request.attributes or {}
    assert attributes["http.route"] == "/chat/{id}"
    assert attributes["streamboost.events"] == 50
    assert attributes["streamboost.outcome"] == "completed"
    assert request.start_time is not None and request.end_time is not None
    first_token_at = request.events[0].timestamp
    assert request.start_time <= first_token_at <= request.end_time
    assert child.start_time is not None and request.start_time <= child.start_time


async def test_active_server_span_gets_the_timing_and_no_second_span() -> None:
    _, meter_provider, exporter, tracer_provider = providers()
    registry = CollectorRegistry()
    boosted = StreamBoost(
        starlette_app(),
        registry=registry,
        meter_provider=meter_provider,
        tracer_provider=tracer_provider,
        coalesce=False,
    )
    app = OpenTelemetryMiddleware(
        boosted, tracer_provider=tracer_provider, meter_provider=meter_provider
    )
    await run_app(app, scope=asgi_scope("/stream/3"))
    spans = list(exporter.get_finished_spans())
    servers = [s for s in spans if s.kind == SpanKind.SERVER]
    assert len(servers) == 1  # the instrumentation's; StreamBoost added none
    server = servers[0]
    assert [e.name for e in server.events] == ["first_token"]
    assert (server.attributes or {})["streamboost.outcome"] == "completed"
    # The Prometheus exemplar carries the same trace id (OpenMetrics scrape).
    accept = [(b"accept", b"application/openmetrics-text; version=1.0.0")]
    scraped = await run_app(boosted, scope=asgi_scope("/metrics", headers=accept))
    trace_id = format(server.context.trace_id, "032x")
    assert f'# {{trace_id="{trace_id}"}}' in scraped.body.decode()


async def test_no_tracer_provider_means_no_span_and_no_exemplar() -> None:
    _, meter_provider, exporter, _ = providers()
    app = StreamBoost(starlette_app(), registry=CollectorRegistry(), meter_provider=meter_provider)
    await run_app(app, scope=asgi_scope("/stream/2"))
    accept = [(b"accept", b"application/openmetrics-text; version=1.0.0")]
    scraped = await run_app(app, scope=asgi_scope("/metrics", headers=accept))
    text = scraped.body.decode()
    # An OpenMetrics scrape holding the histograms that would carry exemplars, none here.
    assert text.endswith("# EOF\n") and "streamboost_time_to_first_token_seconds_bucket" in text
    assert "trace_id" not in text
    assert list(exporter.get_finished_spans()) == []


GLOBAL_PROVIDERS_SCRIPT = """
import asyncio
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry
from streamboost import StreamBoost
from tests.coalesce_apps import run_app
from tests.metrics_apps import asgi_scope, starlette_app

# Built, and serving, before the SDK is installed: the providers must still be picked up.
app = StreamBoost(starlette_app(), registry=CollectorRegistry(), coalesce=False)
asyncio.run(run_app(app, scope=asgi_scope("/stream/2")))
reader, exporter = InMemoryMetricReader(), InMemorySpanExporter()
metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
tracer_provider = TracerProvider()
tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(tracer_provider)
asyncio.run(run_app(app, scope=asgi_scope("/stream/2")))
names = sorted(
    m.name
    for r in reader.get_metrics_data().resource_metrics
    for s in r.scope_metrics
    for m in s.metrics
)
print(",".join(names))
print(",".join(s.name for s in exporter.get_finished_spans()))
"""


def test_global_providers_are_used_when_none_are_given() -> None:
    # A subprocess: setting OpenTelemetry's global providers cannot be undone in this one.
    root = Path(__file__).resolve().parent.parent
    result = subprocess.run(
        [sys.executable, "-c", GLOBAL_PROVIDERS_SCRIPT],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    metric_names, span_names = result.stdout.strip().splitlines()
    assert metric_names.split(",") == [
        "gen_ai.server.time_per_output_token",
        "gen_ai.server.time_to_first_token",
        "http.server.request.duration",
    ]
    assert span_names == "GET /stream/{n:int}"


ENV_PROVIDER_SCRIPT = """
import asyncio
from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry
from streamboost import StreamBoost
from tests.coalesce_apps import run_app
from tests.metrics_apps import asgi_scope, starlette_app

app = StreamBoost(starlette_app(), registry=CollectorRegistry(), coalesce=False, metrics=False)
# The first request loads the provider named by OTEL_PYTHON_TRACER_PROVIDER, as the API does.
asyncio.run(run_app(app, scope=asgi_scope("/stream/2")))
exporter = InMemorySpanExporter()
trace.get_tracer_provider().add_span_processor(SimpleSpanProcessor(exporter))
asyncio.run(run_app(app, scope=asgi_scope("/stream/2")))
print(",".join(s.name for s in exporter.get_finished_spans()))
"""


def test_a_tracer_provider_named_in_the_environment_is_used() -> None:
    root = Path(__file__).resolve().parent.parent
    env = {
        **os.environ,
        "PYTHONPATH": str(root),
        "OTEL_PYTHON_TRACER_PROVIDER": "sdk_tracer_provider",
    }
    result = subprocess.run(
        [sys.executable, "-c", ENV_PROVIDER_SCRIPT],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.strip() == "GET /stream/{n:int}"


async def test_prometheus_alone_takes_exemplars_from_the_active_span() -> None:
    _, _, exporter, tracer_provider = providers()
    registry = CollectorRegistry()
    boosted = StreamBoost(starlette_app(), registry=registry, otel=False, coalesce=False)
    app = OpenTelemetryMiddleware(boosted, tracer_provider=tracer_provider)
    await run_app(app, scope=asgi_scope("/stream/3"))
    (server,) = [s for s in exporter.get_finished_spans() if s.kind == SpanKind.SERVER]
    accept = [(b"accept", b"application/openmetrics-text; version=1.0.0")]
    scraped = (await run_app(boosted, scope=asgi_scope("/metrics", headers=accept))).body
    exemplar = f'# {{trace_id="{format(server.context.trace_id, "032x")}"}}'
    for family in ("http_request_duration", "stream_duration", "time_to_first_token"):
        lines = scraped.decode().splitlines()
        bucket = f"streamboost_{family}_seconds_bucket"
        assert any(line.startswith(bucket) and exemplar in line for line in lines), family


async def test_server_span_of_a_failed_stream_is_annotated_once_at_the_end() -> None:
    _, meter_provider, exporter, tracer_provider = providers()

    async def broken(request: Request) -> StreamingResponse:
        async def body() -> Any:
            yield token(0)
            raise RuntimeError("model crashed")

        return StreamingResponse(body(), media_type=SSE)

    boosted = StreamBoost(
        Starlette(routes=[Route("/broken", broken)]),
        registry=CollectorRegistry(),
        meter_provider=meter_provider,
        tracer_provider=tracer_provider,
        coalesce=False,
    )
    app = OpenTelemetryMiddleware(
        boosted, tracer_provider=tracer_provider, meter_provider=meter_provider
    )
    with pytest.raises(RuntimeError, match="model crashed"):
        await run_app(app, scope=asgi_scope("/broken"))
    (server,) = [s for s in exporter.get_finished_spans() if s.kind == SpanKind.SERVER]
    assert [e.name for e in server.events if e.name == "first_token"] == ["first_token"]
    assert (server.attributes or {})["streamboost.outcome"] == "error"


async def test_streams_of_two_apps_on_one_meter_provider_are_all_recorded_at_collection() -> None:
    # Measurements wait for a collection; two StreamBoosts share the meter's instruments and
    # its one collection callback, which must record the streams of both.
    reader, meter_provider, _, _ = providers()
    apps = [
        StreamBoost(starlette_app(), registry=CollectorRegistry(), meter_provider=meter_provider)
        for _ in range(2)
    ]
    for app in apps:
        for _ in range(3):
            await run_app(app, scope=asgi_scope("/stream/4"))
    found = histograms(reader)
    for name in ("gen_ai.server.time_to_first_token", "http.server.request.duration"):
        _, (point,) = found[name]
        assert point.count == 6
    await run_app(apps[0], scope=asgi_scope("/stream/4"))
    _, (point,) = histograms(reader)["http.server.request.duration"]
    assert point.count == 7  # cumulative: the next collection adds only the new stream
