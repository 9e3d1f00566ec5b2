"""Stream families are observed for streams only: a route that never streams exports the HTTP
request families (requests, request duration, time to first byte, response bytes) and no
zero-valued TTFT, TPOT, stream duration, events, writes, active or outcome series.

One process (uvicorn in a thread) and Prometheus multiprocess mode (uvicorn with two workers as
a subprocess, ``PROMETHEUS_MULTIPROC_DIR`` set), scraped over HTTP after real requests.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from tests.metrics_apps import server_process, starlette_app
from tests.needs import free_port

from streamboost import StreamBoost
from streamboost._cli._loopback import uvicorn_in_thread

ROOT = str(Path(__file__).resolve().parent.parent)
PAGE, STREAM = "/page", "/stream/{n:int}"
HTTP_FAMILIES = {
    "streamboost_http_requests",
    "streamboost_http_request_duration_seconds",
    "streamboost_time_to_first_byte_seconds",
    "streamboost_response_bytes",
}
STREAM_FAMILIES = {
    "streamboost_time_to_first_token_seconds",
    "streamboost_time_per_output_token_seconds",
    "streamboost_stream_duration_seconds",
    "streamboost_stream_events",
    "streamboost_stream_writes",
    "streamboost_streams_active",
    "streamboost_streams",
    "streamboost_inter_token_gap_seconds",
    "streamboost_stream_max_gap_seconds",
}


def families_by_route(base_url: str) -> dict[str, dict[str, int]]:
    """route -> family -> number of series (samples) it has for that route."""
    text = httpx.get(f"{base_url}/metrics", timeout=10).text
    found: dict[str, dict[str, int]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            route = sample.labels.get("route")
            if route is not None and family.name.startswith("streamboost_"):
                per_route = found.setdefault(route, {})
                per_route[family.name] = per_route.get(family.name, 0) + 1
    return found


def load(base_url: str) -> None:
    for _ in range(3):
        page = httpx.get(base_url + PAGE, headers={"connection": "close"}, timeout=10)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    stream = httpx.get(base_url + "/stream/3", headers={"connection": "close"}, timeout=10)
    assert stream.text.count("data:") == 3


def check(found: dict[str, dict[str, int]]) -> None:
    assert set(found[PAGE]) == HTTP_FAMILIES, found[PAGE]
    assert set(found[STREAM]) == HTTP_FAMILIES | STREAM_FAMILIES, found[STREAM]
    # One status: a counter sample, histograms' buckets and sum and count; no zero series.
    assert found[PAGE]["streamboost_http_requests"] == 1
    assert sum(found[PAGE].values()) < sum(found[STREAM].values()) / 2


def test_a_plain_page_exports_no_stream_series() -> None:
    app = StreamBoost(starlette_app(), registry=CollectorRegistry(), otel=False)
    with uvicorn_in_thread(app) as url:
        load(url)
        check(families_by_route(url))


@pytest.mark.parametrize("coalesce", [True, False])
def test_a_page_that_is_never_a_stream_has_no_stream_series_even_before_any_stream(
    coalesce: bool,
) -> None:
    app = StreamBoost(starlette_app(), registry=CollectorRegistry(), otel=False, coalesce=coalesce)
    with uvicorn_in_thread(app) as url:
        assert httpx.get(url + PAGE, timeout=10).status_code == 200
        found = families_by_route(url)
    assert set(found) == {PAGE}
    assert set(found[PAGE]) == HTTP_FAMILIES


def test_multiprocess_a_plain_page_exports_no_stream_series(tmp_path: Path) -> None:
    port = free_port()
    argv = ["uvicorn", "tests.metrics_apps:server_app", "--workers", "2"]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    env = {"PYTHONPATH": ROOT, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    with server_process(argv, port, env) as base_url:
        load(base_url)
        deadline = time.monotonic() + 10  # a response is counted after its last byte
        found = families_by_route(base_url)
        while STREAM not in found or PAGE not in found:
            assert time.monotonic() < deadline, found
            time.sleep(0.05)
            found = families_by_route(base_url)
        check(found)
