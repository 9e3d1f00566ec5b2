"""Issue 11, points 4 and 9 under real uvicorn: the series cap holds whatever statuses and
phase names an app produces, and who may read the metrics (bind address, client networks,
bearer token)."""

from __future__ import annotations

import random
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from tests.needs import free_port

from streamboost import StreamBoost, phase
from streamboost._cli._loopback import uvicorn_in_thread
from streamboost._export._route import OVERFLOW
from streamboost._export._spec import DURATION_BUCKETS, TTFT_BUCKETS

CAP = 50
# 300 distinct statuses out of 200..599 (uvicorn sends no other), in an order that mixes the
# classes; none of the bodiless 204, 205, 304.
STATUSES = random.Random(11).sample([s for s in range(200, 600) if s not in (204, 205, 304)], 300)
CLASSES = {"1xx", "2xx", "3xx", "4xx", "5xx", "_OTHER"}
METHODS = 10  # the nine standard methods and _OTHER


async def status_endpoint(request: Request) -> PlainTextResponse:
    return PlainTextResponse("x", status_code=request.path_params["code"])


async def phase_endpoint(request: Request) -> PlainTextResponse:
    async with phase(f"step{request.path_params['n']}"):
        pass
    return PlainTextResponse("ok")


def capped_app(**kwargs: Any) -> StreamBoost:
    routes = [Route("/s/{code:int}", status_endpoint), Route("/p/{n:int}", phase_endpoint)]
    return StreamBoost(Starlette(routes=routes), max_series=CAP, **kwargs)


def scrape(base: str, **kwargs: Any) -> dict[str, list[dict[str, str]]]:
    """The label sets of every sample of a real /metrics scrape, by sample name."""
    response = httpx.get(base + "/metrics", timeout=10, **kwargs)
    assert response.status_code == 200, response.text
    out: dict[str, list[dict[str, str]]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append(dict(sample.labels))
    return out


def scrape_values(base: str, name: str) -> list[float]:
    text = httpx.get(base + "/metrics", timeout=10).text
    return [
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    ]


def test_300_statuses_stay_within_the_cap_plus_a_constant() -> None:
    registry = CollectorRegistry()
    with uvicorn_in_thread(capped_app(registry=registry, otel=False)) as base:
        with httpx.Client(base_url=base, timeout=10) as client:
            for status in STATUSES:
                assert client.get(f"/s/{status}").status_code == status
        samples = scrape(base)
        counts = scrape_values(base, "streamboost_http_requests_total")
    requests = samples["streamboost_http_requests_total"]
    assert len(requests) == len({tuple(sorted(s.items())) for s in requests})
    overflowed = [s for s in requests if s["route"] == OVERFLOW]
    assert len(requests) - len(overflowed) == CAP  # the first CAP statuses kept their number
    assert {s["status"] for s in overflowed} == {"2xx", "3xx", "4xx", "5xx"}
    assert len(requests) <= CAP + METHODS * len(CLASSES)
    buckets = samples["streamboost_http_request_duration_seconds_bucket"]
    assert len(buckets) == len(requests) * (len(DURATION_BUCKETS) + 1)  # was 6,363
    # Capping loses labels, never requests.
    assert sum(counts) == len(STATUSES)


def test_300_phase_names_stay_within_the_cap_plus_one() -> None:
    registry = CollectorRegistry()
    with uvicorn_in_thread(capped_app(registry=registry, otel=False)) as base:
        with httpx.Client(base_url=base, timeout=10) as client:
            for n in range(300):
                assert client.get(f"/p/{n}").status_code == 200
        samples = scrape(base)
    phases = samples["streamboost_phase_duration_seconds_count"]
    assert len(phases) == CAP + 1  # was 300
    assert {"route": OVERFLOW, "phase": OVERFLOW} in phases
    buckets = samples["streamboost_phase_duration_seconds_bucket"]
    assert len(buckets) == (CAP + 1) * (len(TTFT_BUCKETS) + 1)


def test_otel_attribute_sets_respect_the_same_cap() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    try:
        app = capped_app(registry=CollectorRegistry(), meter_provider=provider)
        with uvicorn_in_thread(app) as base, httpx.Client(base_url=base, timeout=10) as client:
            for status in STATUSES:
                assert client.get(f"/s/{status}").status_code == status
        data = reader.get_metrics_data()
        assert data is not None
        points = [
            point
            for rm in data.resource_metrics
            for sm in rm.scope_metrics
            for metric in sm.metrics
            if metric.name == "http.server.request.duration"
            for point in metric.data.data_points
        ]
        assert sum(p.count for p in points) == len(STATUSES)  # none lost
        overflowed = [p for p in points if p.attributes["http.route"] == OVERFLOW]
        assert len(points) - len(overflowed) == CAP  # was 300
        assert all("http.response.status_code" not in p.attributes for p in overflowed)
        assert len(overflowed) <= METHODS * 2
    finally:
        provider.shutdown()


@contextmanager
def port_server(app: StreamBoost) -> Iterator[Any]:
    server = app.exporters.metrics_server
    assert server is not None
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("host", [None, "127.0.0.1"])
def test_metrics_port_binds_loopback_by_default_and_metrics_host(host: str | None) -> None:
    port = free_port()
    kwargs = {} if host is None else {"metrics_host": host}
    app = capped_app(registry=CollectorRegistry(), otel=False, metrics_port=port, **kwargs)
    with port_server(app) as server:
        assert server.server_address[:2] == ("127.0.0.1", port)  # was 0.0.0.0
        with socket.create_connection(("127.0.0.1", port), timeout=10):
            pass
        response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
        assert response.status_code == 200
        assert "streamboost_http_requests_total" in response.text


@pytest.mark.parametrize(
    ("allow", "status"),
    [(["127.0.0.0/8"], 200), (["10.0.0.0/8", "::1/128"], 403), (["10.0.0.0/8"], 403)],
)
def test_metrics_allow_checks_the_client_network(allow: list[str], status: int) -> None:
    app = capped_app(registry=CollectorRegistry(), otel=False, metrics_allow=allow)
    with uvicorn_in_thread(app) as base, httpx.Client(base_url=base, timeout=10) as client:
        assert client.get("/s/200").status_code == 200  # the app itself is not restricted
        response = client.get("/metrics")
        assert response.status_code == status
        assert ("streamboost_http_requests_total" in response.text) == (status == 200)


def test_metrics_token_is_required_when_set() -> None:
    token = "s3cr3t-Token_value"
    app = capped_app(registry=CollectorRegistry(), otel=False, metrics_token=token)
    with uvicorn_in_thread(app) as base, httpx.Client(base_url=base, timeout=10) as client:
        for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": token}):
            response = client.get("/metrics", headers=headers)
            assert response.status_code == 401
            assert response.headers["www-authenticate"].startswith("Bearer")
            assert token not in response.text
        response = client.get("/metrics", headers={"authorization": f"bearer {token}"})
        assert response.status_code == 200
        assert "streamboost_http_requests_total" in response.text


def test_metrics_allow_and_token_both_apply() -> None:
    token = "abc123"
    app = capped_app(
        registry=CollectorRegistry(),
        otel=False,
        metrics_allow=["10.0.0.0/8"],
        metrics_token=token,
    )
    with uvicorn_in_thread(app) as base, httpx.Client(base_url=base, timeout=10) as client:
        response = client.get("/metrics", headers={"authorization": f"Bearer {token}"})
        assert response.status_code == 403


def test_bad_exposure_options_name_the_value_and_the_fix() -> None:
    def build(**kwargs: Any) -> StreamBoost:
        return capped_app(registry=CollectorRegistry(), otel=False, **kwargs)

    with pytest.raises(ValueError, match=r"metrics_allow: '10\.0\.0\.0/33' is not a network"):
        build(metrics_allow=["10.0.0.0/33"])
    with pytest.raises(ValueError, match="must be a collection of networks"):
        build(metrics_allow="10.0.0.0/8")
    with pytest.raises(ValueError, match=r"metrics_allow=\[\] would refuse every scrape"):
        build(metrics_allow=[])
    with pytest.raises(ValueError, match="metrics_host='not a host' must be an IP address"):
        build(metrics_host="not a host")
    secret = "has space secret"
    with pytest.raises(ValueError, match="value not shown") as caught:
        build(metrics_token=secret)
    assert secret not in str(caught.value)
    guard = build(metrics_token="abc").metrics_app.guard  # type: ignore[union-attr]
    assert "abc" not in repr(guard)
