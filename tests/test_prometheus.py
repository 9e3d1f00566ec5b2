"""Prometheus export in-process: families, outcomes, bytes, durations, the /metrics endpoint."""

from __future__ import annotations

import asyncio
import gzip
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route
from tests.coalesce_apps import Recorded, run_app
from tests.metrics_apps import SSE, asgi_scope, starlette_app, token, value

from streamboost import StreamBoost, gather_phases
from streamboost._export.prometheus._observer import PrometheusObserver

ROUTE = "/stream/{n:int}"
MR = {"method": "GET", "route": ROUTE}


def boost(app: Any, registry: CollectorRegistry, **kwargs: Any) -> StreamBoost:
    kwargs.setdefault("otel", False)
    return StreamBoost(app, registry=registry, **kwargs)


@pytest.mark.parametrize("coalesce", [False, True])
async def test_a_stream_is_observed_once_with_exact_bytes(coalesce: bool) -> None:
    registry = CollectorRegistry()
    app = boost(starlette_app(), registry, coalesce=coalesce)
    recorded = await run_app(app, scope=asgi_scope("/stream/5"))
    assert recorded.body.count(b"data:") == 5
    assert value(registry, "streamboost_response_bytes_total", **MR) == len(recorded.body)
    writes = len(recorded.bodies)
    assert value(registry, "streamboost_stream_writes_total", **MR) == writes
    assert value(registry, "streamboost_stream_events_total", **MR) == 6  # comment + 5 tokens
    assert value(registry, "streamboost_http_requests_total", **MR, status="200") == 1
    assert value(registry, "streamboost_streams_total", **MR, outcome="completed") == 1
    for family in ("time_to_first_token", "time_per_output_token", "stream_duration"):
        assert value(registry, f"streamboost_{family}_seconds_count", **MR) == 1
    ttft = value(registry, "streamboost_time_to_first_token_seconds_sum", **MR)
    ttfb = value(registry, "streamboost_time_to_first_byte_seconds_sum", **MR)
    duration = value(registry, "streamboost_stream_duration_seconds_sum", **MR)
    assert 0 < ttfb <= ttft <= duration  # the comment is the first byte, not the first token
    assert value(registry, "streamboost_streams_active", **MR) == 0


async def test_active_gauge_counts_streams_in_flight() -> None:
    registry = CollectorRegistry()
    seen: list[float] = []

    async def endpoint(request: Request) -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            yield token(0)
            seen.append(value(registry, "streamboost_streams_active", method="GET", route="/s"))
            yield token(1)

        return StreamingResponse(body(), media_type=SSE)

    app = boost(Starlette(routes=[Route("/s", endpoint)]), registry, coalesce=False)
    await run_app(app, scope=asgi_scope("/s"))
    assert seen == [1.0]
    assert value(registry, "streamboost_streams_active", method="GET", route="/s") == 0


async def test_background_task_does_not_change_the_stream_duration() -> None:
    registry = CollectorRegistry()
    background_started: list[float] = []

    async def after() -> None:
        background_started.append(time.perf_counter())
        await asyncio.sleep(0.2)

    async def endpoint(request: Request) -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            yield token(0)
            yield token(1)

        return StreamingResponse(body(), media_type=SSE, background=BackgroundTask(after))

    app = boost(Starlette(routes=[Route("/s", endpoint)]), registry, coalesce=False)
    called_at = time.perf_counter()
    await run_app(app, scope=asgi_scope("/s"))
    finished_at = time.perf_counter()
    labels = {"method": "GET", "route": "/s"}
    duration = value(registry, "streamboost_stream_duration_seconds_sum", **labels)
    request = value(
        registry, "streamboost_http_request_duration_seconds_sum", **labels, status="200"
    )
    # The stream ended before the background task began; the call lasted 0.2 s longer.
    assert 0 < duration <= background_started[0] - called_at
    assert request == duration
    assert finished_at - called_at >= 0.2


async def test_error_and_no_token_outcomes() -> None:
    registry = CollectorRegistry()

    async def broken(request: Request) -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            yield token(0)
            raise RuntimeError("model crashed")

        return StreamingResponse(body(), media_type=SSE)

    async def silent(request: Request) -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            yield b": keep-alive\n\n"

        return StreamingResponse(body(), media_type=SSE)

    app = boost(Starlette(routes=[Route("/broken", broken), Route("/silent", silent)]), registry)
    with pytest.raises(RuntimeError, match="model crashed"):
        await run_app(app, scope=asgi_scope("/broken"))
    await run_app(app, scope=asgi_scope("/silent"))
    total = "streamboost_streams_total"
    assert value(registry, total, method="GET", route="/broken", outcome="error") == 1
    assert value(registry, total, method="GET", route="/silent", outcome="no_token") == 1
    ttft = "streamboost_time_to_first_token_seconds_count"
    assert value(registry, ttft, method="GET", route="/silent") == 0
    for route in ("/broken", "/silent"):
        assert value(registry, "streamboost_streams_active", method="GET", route=route) == 0


async def test_two_middlewares_share_one_registry() -> None:
    registry = CollectorRegistry()
    first = boost(starlette_app(), registry)
    second = boost(starlette_app(), registry)
    await run_app(first, scope=asgi_scope("/stream/1"))
    await run_app(second, scope=asgi_scope("/stream/1"))
    assert value(registry, "streamboost_http_requests_total", **MR, status="200") == 2


async def test_an_extra_observer_keeps_its_own_series_and_route_labels() -> None:
    # Observers cache their label lookup on the record once per response: another observer
    # (its own registry, its own route function) must never pick up the built-in one's.
    registry, extra_registry = CollectorRegistry(), CollectorRegistry()
    extra = PrometheusObserver(registry=extra_registry, route=lambda scope: "custom")
    app = boost(starlette_app(), registry, observers=[extra])
    for _ in range(2):
        await run_app(app, scope=asgi_scope("/stream/2"))
    assert value(registry, "streamboost_http_requests_total", **MR, status="200") == 2
    assert value(registry, "streamboost_streams_total", **MR, outcome="completed") == 2
    custom = {"method": "GET", "route": "custom"}
    assert value(extra_registry, "streamboost_http_requests_total", **custom, status="200") == 2
    assert value(extra_registry, "streamboost_streams_active", **custom) == 0
    assert value(extra_registry, "streamboost_http_requests_total", **MR, status="200") == 0


async def scrape(app: Any, path: str = "/metrics", **scope: Any) -> Recorded:
    return await run_app(app, scope=asgi_scope(path, **scope))


def header(recorded: Recorded, name: bytes) -> bytes | None:
    return dict(recorded.messages[0]["headers"]).get(name)


async def test_metrics_endpoint_serves_text_and_is_not_counted() -> None:
    registry = CollectorRegistry()
    app = boost(starlette_app(), registry)
    await run_app(app, scope=asgi_scope("/stream/2"))
    recorded = await scrape(app)
    assert recorded.messages[0]["status"] == 200
    assert header(recorded, b"content-type") == b"text/plain; version=0.0.4; charset=utf-8"
    parsed = {f.name: f for f in text_string_to_metric_families(recorded.body.decode())}
    requests = parsed["streamboost_http_requests"].samples
    assert [(s.labels["route"], s.value) for s in requests if s.name.endswith("_total")] == [
        (ROUTE, 1.0)
    ]
    await scrape(app)
    assert value(registry, "streamboost_http_requests_total", **MR, status="200") == 1


async def test_metrics_endpoint_negotiates_openmetrics_and_gzip() -> None:
    registry = CollectorRegistry()
    app = boost(starlette_app(), registry)
    await run_app(app, scope=asgi_scope("/stream/1"))
    accept = b"application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
    headers = [(b"accept", accept), (b"accept-encoding", b"gzip")]
    recorded = await scrape(app, headers=headers)
    assert header(
        recorded,
        b"content-type",
    ).startswith(b"application/openmetrics-text")  # type: ignore[union-attr]
    assert header(recorded, b"content-encoding") == b"gzip"
    text = gzip.decompress(recorded.body).decode()
    assert text.endswith("# EOF\n")
    assert "streamboost_time_to_first_token_seconds_bucket" in text


async def test_metrics_path_options() -> None:
    registry = CollectorRegistry()
    moved = boost(starlette_app(), registry, metrics_path="/internal/metrics")
    assert (await scrape(moved, "/internal/metrics")).messages[0]["status"] == 200
    assert (await scrape(moved, "/metrics")).messages[0]["status"] == 404  # the app's answer
    behind_proxy = await scrape(moved, "/api/internal/metrics", root_path="/api")
    assert behind_proxy.messages[0]["status"] == 200
    assert (await scrape(moved, "/internal/metrics", method="POST")).messages[0]["status"] == 405
    off = boost(starlette_app(), CollectorRegistry(), metrics_path=None)
    assert (await scrape(off)).messages[0]["status"] == 404


def test_bad_options_name_the_value_and_the_fix() -> None:
    with pytest.raises(ValueError, match="metrics_path='metrics' must start with '/'"):
        boost(starlette_app(), CollectorRegistry(), metrics_path="metrics")
    with pytest.raises(ValueError, match="metrics_port=70000"):
        boost(starlette_app(), CollectorRegistry(), metrics_port=70000)
    with pytest.raises(ValueError, match="max_series=0"):
        boost(starlette_app(), CollectorRegistry(), max_series=0)


async def test_metrics_on_their_own_port() -> None:
    from tests.needs import free_port

    registry = CollectorRegistry()
    port = free_port()
    app = boost(starlette_app(), registry, metrics_port=port)
    try:
        await run_app(app, scope=asgi_scope("/stream/3"))
        async with httpx.AsyncClient() as client:
            response = await client.get(f"http://127.0.0.1:{port}/metrics")
        assert 'streamboost_streams_total{method="GET",outcome="completed"' in response.text
    finally:
        server = app.exporters.metrics_server
        assert server is not None
        server.shutdown()
        server.server_close()


CONTRACT = {
    "streamboost_http_requests": ("counter", {"method", "route", "status"}),
    "streamboost_http_request_duration_seconds": ("histogram", {"method", "route", "status"}),
    "streamboost_time_to_first_byte_seconds": ("histogram", {"method", "route"}),
    "streamboost_time_to_first_token_seconds": ("histogram", {"method", "route"}),
    "streamboost_time_per_output_token_seconds": ("histogram", {"method", "route"}),
    "streamboost_stream_duration_seconds": ("histogram", {"method", "route"}),
    "streamboost_stream_events": ("counter", {"method", "route"}),
    "streamboost_stream_writes": ("counter", {"method", "route"}),
    "streamboost_response_bytes": ("counter", {"method", "route"}),
    "streamboost_streams_active": ("gauge", {"method", "route"}),
    "streamboost_streams": ("counter", {"method", "route", "outcome"}),
    "streamboost_phase_duration_seconds": ("histogram", {"route", "phase"}),
    "streamboost_phase_fallbacks": ("counter", {"route", "phase", "reason"}),
    "streamboost_inter_token_gap_seconds": ("histogram", {"method", "route"}),
    "streamboost_stream_max_gap_seconds": ("histogram", {"method", "route"}),
}


async def test_families_names_types_and_labels_are_the_agreed_ones() -> None:
    async def endpoint(request: Request) -> StreamingResponse:
        async def fail() -> None:
            raise OSError("down")

        await gather_phases(rag=fail(), fallbacks={"rag": None})

        async def body() -> AsyncIterator[bytes]:
            yield token(0)
            yield token(1)

        return StreamingResponse(body(), media_type=SSE)

    registry = CollectorRegistry()
    app = boost(Starlette(routes=[Route("/s", endpoint)]), registry)
    await run_app(app, scope=asgi_scope("/s"))
    found = {}
    for family in registry.collect():
        labels = {k for s in family.samples for k in s.labels if k != "le"}
        found[family.name] = (family.type, labels)
    # StreamBoost also exports defer()'s families (tests/deferred checks those) and the
    # WebSocket ones (tests/test_websocket_metrics.py), and the tokens (tests/test_tokens.py).
    others = ("streamboost_deferred_", "streamboost_websocket_", "streamboost_tokens")
    stream_families = {k: v for k, v in found.items() if not k.startswith(others)}
    assert stream_families == CONTRACT
    ttft = next(
        f for f in registry.collect() if f.name == "streamboost_time_to_first_token_seconds"
    )
    bounds = [s.labels["le"] for s in ttft.samples if s.name.endswith("_bucket")]
    # Issue 15: 10 ** (k/16) from 10 ms to 11.5 s (three digits), coarse outside.
    assert bounds[:8] == [
        "0.001",
        "0.0025",
        "0.005",
        "0.0075",
        "0.01",
        "0.0115",
        "0.0133",
        "0.0154",
    ]
    assert bounds[-8:] == ["8.66", "10.0", "11.5", "15.0", "20.0", "30.0", "60.0", "+Inf"]
    assert len(bounds) == 59


async def test_a_request_that_ends_before_any_response_is_499_or_500() -> None:
    """README: a request that ended before any response is status 499 (the client left) or
    500 (the app failed)."""
    registry = CollectorRegistry()

    async def left(request: Request) -> StreamingResponse:
        while (await request.receive())["type"] != "http.disconnect":
            pass
        raise asyncio.CancelledError  # servers that cancel the app when its client leaves

    async def broken(request: Request) -> StreamingResponse:
        raise RuntimeError("before the response")

    routes = [Route("/left", left), Route("/broken", broken)]
    app = boost(Starlette(routes=routes), registry)
    gone = asyncio.Event()
    gone.set()
    with pytest.raises(asyncio.CancelledError):
        await run_app(app, scope=asgi_scope("/left"), disconnect=gone)
    with pytest.raises(RuntimeError):
        await run_app(app, scope=asgi_scope("/broken"))
    total = "streamboost_http_requests_total"
    assert value(registry, total, method="GET", route="/left", status="499") == 1
    assert value(registry, total, method="GET", route="/broken", status="500") == 1


async def test_an_app_that_returns_after_its_client_left_is_499_not_500() -> None:
    """A client that hangs up during a long pre-stream phase: the app sees http.disconnect
    and returns without a response (uvicorn does not cancel it). Not an app error."""
    registry = CollectorRegistry()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    gone = asyncio.Event()
    gone.set()
    await run_app(boost(app, registry), scope=asgi_scope("/x"), disconnect=gone)
    total = "streamboost_http_requests_total"
    assert value(registry, total, method="GET", route="unmatched", status="499") == 1
