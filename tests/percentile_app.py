"""The app of the percentile test (tests/test_percentiles_e2e.py), served by a uvicorn
subprocess: ``uvicorn --factory tests.percentile_app:app``, with ``PERCENTILE_BUCKETS=old`` for
the buckets of before issue 15 (else the defaults).

Time is virtual: an outer ASGI layer gives each request its own clock (a context variable read by
StreamBoost's ``clock=``), and the app advances it by the request's ``ttft`` before the first
token and by ``gap`` before each following one, so the record's TTFT, time per output token and
stream duration are exactly the drawn values, whatever the machine's load.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from contextvars import ContextVar
from typing import Final

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from streamboost import MetricBuckets, StreamBoost

_OLD_TTFT = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0)
_OLD_DURATION = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5)
# The defaults before issue 15 (the semantic conventions' advice, extended).
OLD_BUCKETS: Final = MetricBuckets(
    ttft=(*_OLD_TTFT, 7.5, 10.0, 20.0, 30.0, 60.0),
    tpot=(0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5),
    stream_duration=(*_OLD_DURATION, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0),
)
STREAM_ROUTES: Final = ("/fast", "/chat", "/slow", "/reasoning")
PAGE: Final = "/page"
TOKENS: Final = 3
BUCKETS_ENV: Final = "PERCENTILE_BUCKETS"

_now: ContextVar[list[float] | None] = ContextVar("virtual_now", default=None)


def virtual_clock() -> float:
    """The current request's virtual time (the real clock outside a request)."""
    now = _now.get()
    return time.perf_counter() if now is None else now[0]


def with_virtual_time(inner: ASGIApp) -> ASGIApp:
    """Outside StreamBoost: each HTTP request gets a virtual clock starting at 1000 s."""

    async def timed(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await inner(scope, receive, send)
            return
        reset = _now.set([1000.0])
        try:
            await inner(scope, receive, send)
        finally:
            _now.reset(reset)

    return timed


def token(i: int) -> bytes:
    return b'data: {"choices":[{"delta":{"content":"t%d"}}]}\n\n' % i


async def stream(request: Request) -> StreamingResponse:
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

    return StreamingResponse(body(), media_type="text/event-stream")


async def page(request: Request) -> HTMLResponse:
    return HTMLResponse("<!doctype html><title>plain</title><p>no stream here</p>")


def app() -> ASGIApp:
    """The factory: StreamBoost (no coalescing, the virtual clock) around the routes."""
    old = os.environ.get(BUCKETS_ENV) == "old"
    routes = [Route(path, stream) for path in STREAM_ROUTES] + [Route(PAGE, page)]
    boosted = StreamBoost(
        Starlette(routes=routes),
        coalesce=False,
        clock=virtual_clock,
        otel=False,
        buckets=OLD_BUCKETS if old else None,
    )
    return with_virtual_time(boosted)
