"""End to end: a real Prometheus scrapes the example chat app (wrapped in StreamBoost, under
real uvicorn on loopback) while a load generator streams; then every panel query of the
shipped dashboards, with its variables filled in, must return data from Prometheus' HTTP API.

Twice: the app in one process (uvicorn in a thread), and in two worker processes in Prometheus
multiprocess mode (``uvicorn --workers 2`` as a subprocess, ``PROMETHEUS_MULTIPROC_DIR`` set
before it starts), where /metrics serves the sum of both workers' files. No panel queries the
``process_*`` or ``python_*`` families (absent in multiprocess mode), so the same queries and
minimums hold for both.

Prometheus is the Debian package's binary (``.ci/prepare`` installs it). Everything listens on
127.0.0.1; waits are bounded; the Prometheus process and the server processes are killed at
the end.
"""

from __future__ import annotations

import asyncio
import math
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.needs import free_port, tool

from dashboard_queries import GRAFANA_DIR, Query, all_queries
from e2e_app import WORKDIR_ENV, build_app
from metrics_apps import server_process
from streamboost._cli._loopback import uvicorn_in_thread

JOB = "streamboost-e2e"
# What Grafana would put in for the variables: All for the label filters, a 15 s rate window
# (four 1 s scrapes and then some) and a range covering the whole run.
VARIABLES = {
    "$__rate_interval": "15s",
    "$__range": "5m",
    "$job": JOB,
    "$instance": ".*",
    "$route": ".*",
    "$cache": ".*",
    "$writer": ".*",
}
LABEL_VALUES = re.compile(r"label_values\((?P<selector>.+), (?P<label>\w+)\)")
# Lower bounds (exclusive) for the first query of some panels, given the load below.
MINIMUM = {
    "Requests per second": 0.0,
    "Time to first token": 0.0,
    "Coalescing ratio": 1.0,  # 16 tokens 10 ms apart and a 50 ms window: writes < events
    "Cache hit ratio": 0.0,  # 40 streams over 3 users
    "Items per second by outcome": 0.0,
}
# About 0.2 s per stream, four at a time: the load spans several 1 s scrapes, so rates and
# quantiles see counters grow between samples rather than appear all at once.
STREAMS = 40
CONCURRENCY = 4
BAD_REQUESTS = 3
DISCONNECTS = 2
WORKERS = 2


def prometheus_binary() -> str:
    return tool("prometheus", ".ci/prepare (Debian: prometheus)")


@contextmanager
def prometheus_server(binary: str, target: str, workdir: Path) -> Iterator[str]:
    """Run Prometheus scraping ``target`` (host:port) every second; yield its base URL."""
    config = workdir / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        f"rule_files:\n  - {GRAFANA_DIR / 'prometheus' / 'alerts.yml'}\n"
        f"scrape_configs:\n  - job_name: {JOB}\n    static_configs:\n"
        f'      - targets: ["{target}"]\n'
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (workdir / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            if process.poll() is not None:
                pytest.fail(f"prometheus exited: {(workdir / 'prometheus.log').read_text()}")
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("prometheus was not ready within 20 s")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        log.close()


def instant(prometheus: str, expr: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=10)
    body = response.json()
    assert response.status_code == 200 and body["status"] == "success", (expr, body)
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def has_data(prometheus: str, query: Query) -> bool:
    """A panel query has data when one series has a number (a quantile of nothing is NaN);
    a variable query when its label has a value."""
    expr = fill(query.expr)
    variable = LABEL_VALUES.fullmatch(expr)
    if variable:
        response = httpx.get(
            f"{prometheus}/api/v1/label/{variable['label']}/values",
            params={"match[]": variable["selector"]},
            timeout=10,
        )
        assert response.status_code == 200, (expr, response.text)
        return bool(response.json()["data"])
    return any(not math.isnan(float(s["value"][1])) for s in instant(prometheus, expr))


def fill(expr: str) -> str:
    # Longest names first: $__range must not eat the prefix of $__rate_interval and the like.
    for name in sorted(VARIABLES, key=len, reverse=True):
        expr = expr.replace(name, VARIABLES[name])
    assert "$" not in expr, expr
    return expr


async def generate_load(base_url: str) -> set[str]:
    """Stream ``STREAMS`` chats, ``CONCURRENCY`` at a time, plus a few bad requests (422)
    and a few streams the client drops after the first chunk. Returns the worker PIDs that
    served the chats (none when the app does not mark them)."""
    semaphore = asyncio.Semaphore(CONCURRENCY)
    pids: set[str] = set()

    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:

        async def chat(index: int) -> None:
            async with semaphore:
                body = {"user_id": f"u{index % 3}", "session_id": f"s{index % 4}"}
                # A connection per chat: with several workers, each accept goes to either.
                headers = {"connection": "close"}
                response = await client.post("/chat/stream", json=body, headers=headers)
                assert response.status_code == 200
                assert response.text.endswith("data: [DONE]\n\n")
                pids.update(response.headers.get_list("x-worker-pid"))

        async def bad_request() -> None:
            response = await client.post("/chat/stream", content=b"not json")
            assert response.status_code == 422

        async def disconnect() -> None:
            async with client.stream("POST", "/chat/stream", json={}) as response:
                async for _ in response.aiter_raw():
                    break

        await asyncio.gather(
            *(chat(i) for i in range(STREAMS)),
            *(bad_request() for _ in range(BAD_REQUESTS)),
            *(disconnect() for _ in range(DISCONNECTS)),
        )
    return pids


def wait_for(prometheus: str, expr: str, want: float, seconds: float) -> float:
    """Poll an instant query until its single value reaches ``want`` (bounded)."""
    deadline = time.monotonic() + seconds
    value = 0.0
    while time.monotonic() < deadline:
        result = instant(prometheus, expr)
        if result:
            value = float(result[0]["value"][1])
            if value >= want:
                return value
        time.sleep(0.25)
    return value


@contextmanager
def one_process(workdir: Path) -> Iterator[str]:
    with uvicorn_in_thread(build_app(workdir)) as base_url:
        yield base_url


@contextmanager
def two_workers(workdir: Path) -> Iterator[str]:
    """``uvicorn --workers 2`` serving ``e2e_app.worker_app`` in multiprocess mode; yields its
    URL once both workers answer."""
    directory = workdir / "metrics"
    directory.mkdir()
    port = free_port()
    argv = ["uvicorn", "--workers", str(WORKERS), "--port", str(port), "--factory",
            "tests.e2e_app:worker_app"]  # fmt: skip
    env = {"PROMETHEUS_MULTIPROC_DIR": str(directory), WORKDIR_ENV: str(workdir)}
    with server_process(argv, port, env) as base_url:
        # The first worker up answers; wait (bounded) until the other one does too, so the
        # load is spread over both from the start.
        pids: set[str] = set()
        deadline = time.monotonic() + 30
        while len(pids) < WORKERS and time.monotonic() < deadline:
            response = httpx.get(f"{base_url}/health", headers={"connection": "close"}, timeout=10)
            pids.update(response.headers.get_list("x-worker-pid"))
            time.sleep(0.05)
        assert len(pids) == WORKERS, f"only workers {pids} answered within 30 s"
        yield base_url


Server = Callable[[Path], AbstractContextManager[str]]


@pytest.mark.parametrize(
    ("server", "workers"), [(one_process, 0), (two_workers, WORKERS)], ids=["one", "two_workers"]
)
def test_every_panel_query_returns_data_from_a_real_prometheus(
    server: Server, workers: int, tmp_path: Path
) -> None:
    binary = prometheus_binary()
    with server(tmp_path) as base_url:
        target = base_url.removeprefix("http://")
        with prometheus_server(binary, target, tmp_path) as prometheus:
            up = wait_for(prometheus, f'up{{job="{JOB}"}}', 1, 15)
            assert up == 1, "prometheus never scraped the app's /metrics"
            total = f'sum(streamboost_streams_total{{job="{JOB}"}}) or vector(0)'
            pids = asyncio.run(generate_load(base_url))
            # Every worker served chats (workers=0: one process, no PID marks).
            assert len(pids) == workers, pids
            streams = STREAMS + DISCONNECTS
            seen = wait_for(prometheus, total, streams, 15)
            assert seen == streams, f"prometheus saw {seen} streams, expected {streams}"
            # Rates need a second scrape after the last increment inside the window; on a
            # loaded machine scrapes run late, so poll (bounded) instead of one fixed sleep.
            queries = all_queries()
            deadline = time.monotonic() + 20
            while True:
                empty = [query for query in queries if not has_data(prometheus, query)]
                if not empty or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            assert not empty, "queries without data:\n" + "\n".join(
                f"{q.dashboard} / {q.title}: {fill(q.expr)}" for q in empty
            )
            # A few panels must show what the load did, not just a series.
            for title, low in MINIMUM.items():
                (query,) = [q for q in queries if q.title == title][:1]
                values = [float(s["value"][1]) for s in instant(prometheus, fill(query.expr))]
                assert max(v for v in values if not math.isnan(v)) > low, (title, values)
            rules = httpx.get(f"{prometheus}/api/v1/rules", timeout=10).json()
            alerts = [r for g in rules["data"]["groups"] for r in g["rules"]]
            assert len(alerts) == 4 and all(r["health"] == "ok" for r in alerts), alerts
