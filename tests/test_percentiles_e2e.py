"""The dashboards' percentiles are true: known distributions of time to first token, time per
output token and stream duration go through a real StreamBoost app (under real uvicorn on
loopback), a real Prometheus scrapes it, and the shipped dashboards' ``histogram_quantile``
queries, evaluated by that Prometheus, must be within 10% of the true percentiles of what the
app produced, from 20 ms to 10 s.

Time is virtual: an outer ASGI layer gives each request its own clock (a context variable, read
by StreamBoost's ``clock=``), and the app advances it by the drawn TTFT and gaps before each
token, so the record's figures are exactly the drawn values whatever the machine's load. The
same requests also go to a second app configured with the buckets of before issue 15, whose
errors are printed next to the new ones (and must be worse: the comparison can fail).

A plain HTML route is served too: the stream panels must show no series for it.
"""

from __future__ import annotations

import asyncio
import math
import random
import re
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import httpx
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from dashboard_queries import all_queries
from metrics_apps import SSE, token
from streamboost import MetricBuckets, StreamBoost
from streamboost._loopback import uvicorn_in_thread
from test_grafana_e2e import JOB, fill, instant, prometheus_binary, prometheus_server, wait_for

# The defaults before issue 15 (the semantic conventions' advice, extended).
OLD_BUCKETS = MetricBuckets(
    ttft=(0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0)
    + (7.5, 10.0, 20.0, 30.0, 60.0),
    tpot=(0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5),
    stream_duration=(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0)
    + (7.5, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0),
)
# Per route: (TTFT median, sigma), (gap between tokens median, sigma), lognormal; three tokens
# per stream, so the duration is TTFT + 2 gaps. Together their p50..p99 span 20 ms to 10 s.
DISTRIBUTIONS = {
    "/fast": ((0.03, 0.3), (0.022, 0.15)),
    "/chat": ((0.15, 0.5), (0.06, 0.4)),
    "/slow": ((0.8, 0.5), (0.3, 0.4)),
    "/reasoning": ((3.0, 0.3), (1.0, 0.25)),
}
TOKENS = 3
PER_ROUTE = 1500
CONCURRENCY = 8
PAGE = "/page"
PANELS = {
    "Time to first token": "ttft",
    "Time per output token": "tpot",
    "Stream duration": "duration",
}
LOW, HIGH, TOLERANCE = 0.02, 10.0, 0.10

_now: ContextVar[list[float] | None] = ContextVar("virtual_now", default=None)


def virtual_clock() -> float:
    """The current request's virtual time (the real clock outside a request)."""
    now = _now.get()
    return time.perf_counter() if now is None else now[0]


def with_virtual_time(app: ASGIApp) -> ASGIApp:
    """Outside StreamBoost: each HTTP request gets a virtual clock starting at 1000 s."""

    async def timed(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        reset = _now.set([1000.0])
        try:
            await app(scope, receive, send)
        finally:
            _now.reset(reset)

    return timed


async def stream(request: Request) -> StreamingResponse:
    """Advances the virtual clock by ``ttft`` before the first token, ``gap`` before each
    following one; the last body message follows the last token at once."""
    ttft = float(request.query_params["ttft"])
    gap = float(request.query_params["gap"])
    now = _now.get()
    assert now is not None

    async def body() -> AsyncIterator[bytes]:
        now[0] += ttft
        yield token(0)
        for i in range(1, TOKENS):
            now[0] += gap
            yield token(i)

    return StreamingResponse(body(), media_type=SSE)


async def page(request: Request) -> HTMLResponse:
    return HTMLResponse("<!doctype html><title>plain</title><p>no stream here</p>")


def boosted(buckets: MetricBuckets | None) -> Any:
    routes = [Route(path, stream) for path in DISTRIBUTIONS] + [Route(PAGE, page)]
    app = StreamBoost(
        Starlette(routes=routes),
        coalesce=False,
        clock=virtual_clock,
        registry=CollectorRegistry(),
        otel=False,
        **({} if buckets is None else {"buckets": buckets}),
    )
    return with_virtual_time(app)


def draw(seed: int = 15) -> dict[str, list[tuple[float, float]]]:
    rng = random.Random(seed)
    drawn: dict[str, list[tuple[float, float]]] = {}
    for path, ((ttft_median, ttft_sigma), (gap_median, gap_sigma)) in DISTRIBUTIONS.items():
        drawn[path] = [
            (
                rng.lognormvariate(math.log(ttft_median), ttft_sigma),
                rng.lognormvariate(math.log(gap_median), gap_sigma),
            )
            for _ in range(PER_ROUTE)
        ]
    return drawn


def truth(values: list[float], q: float) -> float:
    """The q-quantile of the values (linear between order statistics)."""
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def figures(ttft: float, gap: float) -> dict[str, float]:
    return {"ttft": ttft, "tpot": gap, "duration": ttft + (TOKENS - 1) * gap}


async def send_all(base_urls: list[str], requests: list[tuple[str, float, float]]) -> None:
    semaphore = asyncio.Semaphore(CONCURRENCY)
    async with httpx.AsyncClient(timeout=30) as client:

        async def one(base_url: str, path: str, ttft: float, gap: float) -> None:
            async with semaphore:
                params = {"ttft": repr(ttft), "gap": repr(gap)}
                response = await client.get(base_url + path, params=params)
                assert response.status_code == 200
                assert response.text.count("data:") == TOKENS

        await asyncio.gather(
            *(one(url, path, ttft, gap) for url in base_urls for path, ttft, gap in requests)
        )
        for url in base_urls:
            assert (await client.get(url + PAGE)).status_code == 200


@contextmanager
def two_apps() -> Iterator[tuple[str, str]]:
    with ExitStack() as stack:
        new = stack.enter_context(uvicorn_in_thread(boosted(None)))
        old = stack.enter_context(uvicorn_in_thread(boosted(OLD_BUCKETS)))
        yield new, old


def panel_quantiles() -> dict[str, list[tuple[float, str]]]:
    """Each stream panel's queries: (q, PromQL with the $ variables left in)."""
    found: dict[str, list[tuple[float, str]]] = {}
    for query in all_queries():
        if query.dashboard == "streamboost-overview" and query.title in PANELS:
            match = re.match(r"histogram_quantile\(([\d.]+),", query.expr)
            assert match, query.expr
            found.setdefault(PANELS[query.title], []).append((float(match[1]), query.expr))
    assert sorted(found) == sorted(PANELS.values()), found
    return found


def evaluate(prometheus: str, expr: str, instance: str, window: str) -> dict[str, float]:
    """A panel query for one instance: route to value."""
    expr = expr.replace('instance=~"$instance"', f'instance="{instance}"')
    filled = fill(expr.replace("$__rate_interval", window))
    return {s["metric"]["route"]: float(s["value"][1]) for s in instant(prometheus, filled)}


def test_dashboard_percentiles_are_within_ten_percent_of_the_truth(tmp_path: Path) -> None:
    binary = prometheus_binary()
    drawn = draw()
    panels = panel_quantiles()
    with two_apps() as (new_url, old_url):
        targets = {"new": new_url.removeprefix("http://"), "old": old_url.removeprefix("http://")}
        with prometheus_server(binary, list(targets.values()), tmp_path) as prometheus:
            started = time.monotonic()
            count = f'sum(streamboost_time_to_first_token_seconds_count{{job="{JOB}"}})'
            # One stream per route and app first: the series exist before the load, so the
            # rate over the window counts every stream of the load.
            warm = [(path, values[0][0], values[0][1]) for path, values in drawn.items()]
            asyncio.run(send_all([new_url, old_url], warm))
            baseline = 2 * len(drawn)
            assert wait_for(prometheus, count, baseline, 30) == baseline
            load = [(path, ttft, gap) for path, values in drawn.items() for ttft, gap in values]
            asyncio.run(send_all([new_url, old_url], load))
            expected = baseline + 2 * len(load)
            seen = wait_for(prometheus, count, expected, 60)
            assert seen == expected, f"prometheus saw {seen} streams, expected {expected}"
            window = f"{math.ceil(time.monotonic() - started) + 30}s"

            errors: dict[str, list[tuple[str, str, float, float, float]]] = {"new": [], "old": []}
            for family, queries in panels.items():
                for q, expr in queries:
                    for name, instance in targets.items():
                        estimates = evaluate(prometheus, expr, instance, window)
                        # No series for the route that never streams (no NaN line).
                        assert sorted(estimates) == sorted(DISTRIBUTIONS), (family, estimates)
                        for path, values in drawn.items():
                            true = truth([figures(*v)[family] for v in values], q)
                            if LOW <= true <= HIGH:
                                estimate = estimates[path]
                                error = abs(estimate - true) / true
                                errors[name].append((family, path, q, true, error))
            requests = instant(
                prometheus,
                f'sum by (route) (streamboost_http_requests_total{{job="{JOB}"}})',
            )
            assert PAGE in {s["metric"]["route"] for s in requests}  # the page was counted

    for name, rows in errors.items():
        worst = max(rows, key=lambda row: row[4])
        print(f"\n{name} buckets: {len(rows)} percentiles, worst error {worst[4]:.1%} {worst}")
        for family, path, q, true, error in rows:
            print(f"  {family:8} {path:11} p{round(q * 100)}: true {true:.4f} s, error {error:.1%}")
    trues = [row[3] for row in errors["new"]]
    assert min(trues) < 0.03 and max(trues) > 7.0, "the draws must span 20 ms to 10 s"
    assert len(errors["new"]) >= 30
    bad = [row for row in errors["new"] if row[4] > TOLERANCE]
    assert not bad, bad
    # The old buckets fail the same check: the test can tell true percentiles from false ones.
    assert max(row[4] for row in errors["old"]) > 0.3
