"""The Overview's TTFT split against a real Prometheus, with a real model phase in it.

The app of tests/upstream_apps.py (StreamBoost around the openai SDK, whose http_client is
upstream_client()) calls the simulated provider on real uvicorn; Prometheus scrapes its
/metrics every second while a client streams. Then the panel queries of "Time to first token,
split" and "Model calls per stream", variables filled in as Grafana would, must show the
model's part (at least the provider's delay per stream), the retrieval phase before it, no
queue, a rest of 0 or more, and one model call per stream.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry
from tests.coalesce_apps import Records
from tests.test_grafana_e2e import fill, prometheus_binary, prometheus_server, wait_for

from dashboard_queries import load_dashboard
from streamboost import upstream_client
from streamboost._cli._loopback import uvicorn_in_thread
from upstream_apps import DELAY, Provider, chat_app

STREAMS = 8


MEAN_TTFT = (
    "sum(rate(streamboost_time_to_first_token_seconds_sum[$__rate_interval]))"
    " / sum(rate(streamboost_time_to_first_token_seconds_count[$__rate_interval]))"
)


def value_at(prometheus: str, expr: str, at: float) -> float:
    """The one value of an instant query evaluated at ``at`` (so queries see one window)."""
    response = httpx.get(
        f"{prometheus}/api/v1/query", params={"query": fill(expr), "time": at}, timeout=10
    )
    body = response.json()
    assert response.status_code == 200 and body["status"] == "success", (expr, body)
    (series,) = body["data"]["result"]
    return float(series["value"][1])


def panel_values(prometheus: str, title: str, at: float) -> dict[str, float]:
    """Legend to value of every query of the Overview panel ``title`` (one series each)."""
    (panel,) = [
        panel
        for panel in load_dashboard("streamboost-overview.json")["panels"]
        if panel.get("title") == title
    ]
    return {
        target["legendFormat"]: value_at(prometheus, target["expr"], at)
        for target in panel["targets"]
    }


def test_the_split_shows_the_model_and_the_phases_before_it(tmp_path: Path) -> None:
    binary = prometheus_binary()
    upstream = Provider()
    records = Records()
    with uvicorn_in_thread(upstream) as provider_url:
        app = chat_app(upstream_client(), provider_url, CollectorRegistry(), records)
        with uvicorn_in_thread(app) as base_url:
            target = base_url.removeprefix("http://")
            with prometheus_server(binary, target, tmp_path) as prometheus:
                up = wait_for(prometheus, 'up{job="streamboost-e2e"}', 1, 15)
                assert up == 1, "prometheus never scraped the app's /metrics"
                with httpx.Client(base_url=base_url, timeout=30) as client:
                    for _ in range(STREAMS):
                        response = client.post("/chat/stream", json={})
                        assert response.status_code == 200
                count = 'sum(streamboost_time_to_first_token_seconds_count{job="streamboost-e2e"})'
                assert wait_for(prometheus, count, STREAMS, 15) == STREAMS
                # The rates need two samples after the last stream: poll, bounded.
                deadline = time.monotonic() + 20
                while True:
                    at = time.time()
                    split = panel_values(prometheus, "Time to first token, split", at)
                    calls = panel_values(prometheus, "Model calls per stream", at)
                    mean_ttft = value_at(prometheus, MEAN_TTFT, at)
                    ready = not any(math.isnan(v) for v in [*split.values(), *calls.values()])
                    if ready or time.monotonic() > deadline:
                        break
                    time.sleep(0.5)
    assert set(split) == {"queue", "phases before the model", "model", "rest"}, split
    assert split["queue"] == 0
    assert split["phases before the model"] >= 0.01  # retrieval sleeps 10 ms
    assert split["model"] >= DELAY
    assert split["rest"] > 0  # the app's own work after the model's first token
    # Nothing overlaps here, so the four parts add up to the mean TTFT of the same window.
    assert math.isclose(sum(split.values()), mean_ttft, rel_tol=1e-9)
    assert calls == {"{{route}}": 1.0}  # one series: route="/chat/stream"
