"""Apps and helpers for the metrics, OpenTelemetry, phase and route tests.

``server_app`` is also served by uvicorn and gunicorn subprocesses
(``tests.metrics_apps:server_app``) for the accuracy and multiprocess tests.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, StreamingResponse
from starlette.routing import Route

from streamboost import StreamBoost
from streamboost._stream import current_record

SSE = "text/event-stream"


def token(i: int) -> bytes:
    return b'data: {"choices":[{"delta":{"content":"t%d"}}]}\n\n' % i


async def stream_endpoint(request: Request) -> StreamingResponse:
    """``/stream/{n}?delay=S&gap=S``: the first token after ``delay`` s, then n-1 more."""
    n = int(request.path_params["n"])
    delay = float(request.query_params.get("delay", "0"))
    gap = float(request.query_params.get("gap", "0"))

    async def body() -> AsyncIterator[bytes]:
        yield b": comment, not a token\n\n"
        if delay:
            await asyncio.sleep(delay)
        for i in range(n):
            if i and gap:
                await asyncio.sleep(gap)
            yield token(i)

    headers = {"x-pid": str(os.getpid())}
    record = current_record.get()
    if record is not None:
        # The record's request time (time.perf_counter, CLOCK_MONOTONIC on Linux: one clock
        # for every process), so a client on this machine can place the server's TTFT
        # window on its own timeline.
        headers["x-request-at"] = repr(record.request_at)
    return StreamingResponse(body(), media_type=SSE, headers=headers)


async def page_endpoint(request: Request) -> HTMLResponse:
    """``/page``: a plain HTML page, no stream."""
    return HTMLResponse("<!doctype html><title>page</title><p>not a stream</p>")


def starlette_app() -> Starlette:
    return Starlette(
        routes=[Route("/stream/{n:int}", stream_endpoint), Route("/page", page_endpoint)]
    )


# Served by the subprocess tests: the default registry (multiprocess files when
# PROMETHEUS_MULTIPROC_DIR is set), no coalescing so every token is its own write.
server_app = StreamBoost(starlette_app(), coalesce=False, otel=False)


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    """A sample's value, 0.0 when the series does not exist."""
    return registry.get_sample_value(name, labels) or 0.0


def series(registry: CollectorRegistry, family: str) -> set[tuple[tuple[str, str], ...]]:
    """The label sets of a family's series (the ``le`` label of histograms left out)."""
    found: set[tuple[tuple[str, str], ...]] = set()
    for metric in registry.collect():
        if metric.name == family:
            for sample in metric.samples:
                found.add(tuple(sorted((k, v) for k, v in sample.labels.items() if k != "le")))
    return found


@contextmanager
def server_process(argv: list[str], port: int, env: dict[str, str]) -> Iterator[str]:
    """Run a server command in its own process group; yield its base URL once it answers."""
    full_env = {**os.environ, **env}
    proc = subprocess.Popen(
        [sys.executable, "-m", *argv],
        env=full_env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                err = proc.stderr.read().decode() if proc.stderr else ""
                raise RuntimeError(f"{argv} exited with {proc.returncode}: {err[-2000:]}")
            try:
                httpx.get(base + "/metrics", timeout=1.0)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{argv} did not answer within 30 s") from None
                time.sleep(0.1)
        yield base
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        except ProcessLookupError:
            pass
        if proc.stderr:
            proc.stderr.close()


def asgi_scope(path: str, method: str = "GET", **extra: Any) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"test")],
        "server": ("127.0.0.1", 80),
        "client": ("127.0.0.1", 1234),
        **extra,
    }
