"""What measuring streams costs: StreamBoost's timing and export against the bare app and the
middlewares a user would pick instead, in the same run.

    uv run python benchmarks/bench_overhead.py [--quick]

Every variant wraps the same Starlette app: ``GET /stream/{n}`` streams n OpenAI-shaped SSE
chunks. StreamBoost runs with Prometheus and OpenTelemetry metrics on (an SDK MeterProvider
with an in-memory reader) and coalescing off, so the ratio is the price of measuring alone;
``streamboost-prom`` is the same with OpenTelemetry off, and ``send-wrapper`` a middleware that
only forwards each message (the floor for anything that sees the chunks). ``count-floor`` is the
least any timing middleware can do per chunk in Python: a plain function that counts the chunk
and its bytes and reads the clock once (what a last-token time needs), with no per-request
state and no export. After the table the script prints what one OpenTelemetry SDK
``Histogram.record`` costs (a stream of two or more tokens makes three) next to the 10% budget
at N=200, so the distance to the targets can be read off the same run.

StreamBoost hands its OpenTelemetry measurements to the SDK when a reader collects (the SDK's
``record()`` costs ~8 us each, up to three per stream). So that this cost is counted, every
timed in-process round of ``streamboost`` and ``otel-asgi`` ends with a collection of their
reader; ``streamboost-uncollected`` is never collected while timed: the request path alone.
Under uvicorn no reader is collected (StreamBoost records its backlog itself past 16,384
waiting streams), so there the ``streamboost`` rows show the request path.

- in-process: the ASGI app driven directly by a minimal server loop, many requests; the best
  of several interleaved rounds per variant (the machine is shared and noisy).
- uvicorn: each variant in its own uvicorn process on 127.0.0.1 (all started at once); a
  raw-socket client keeps 4 connections busy for a fixed time; per-request time is elapsed
  time over responses; the best of 5 interleaved rounds.

Prints per-request times and ratios to the bare app; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry
from prometheus_fastapi_instrumentator import Instrumentator
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route
from starlette_exporter import PrometheusMiddleware

from streamboost import StreamBoost

ROOT = Path(__file__).resolve().parent.parent
SIZES = (1, 20, 200)
VARIANTS = (
    "bare",
    "send-wrapper",
    "count-floor",
    "streamboost",
    "streamboost-uncollected",
    "streamboost-prom",
    "instrumentator",
    "starlette-exporter",
    "otel-asgi",
)
ALTERNATIVES = ("instrumentator", "starlette-exporter", "otel-asgi")


def _chunk(i: int) -> bytes:
    delta = {"choices": [{"index": 0, "delta": {"content": f" tok{i}"}, "finish_reason": None}]}
    return b"data: " + orjson.dumps({"object": "chat.completion.chunk", **delta}) + b"\n\n"


CHUNKS = [_chunk(i) for i in range(max(SIZES))]


async def stream(request: Request) -> StreamingResponse:
    n: int = request.path_params["n"]

    async def body() -> AsyncIterator[bytes]:
        for chunk in CHUNKS[:n]:
            yield chunk

    return StreamingResponse(body(), media_type="text/event-stream")


def base_app() -> Starlette:
    return Starlette(routes=[Route("/stream/{n:int}", stream)])


# Readers collected at the end of every timed in-process round (see the module docstring).
COLLECTED: dict[str, InMemoryMetricReader] = {}


def meter_provider(collected_as: str | None = None) -> MeterProvider:
    reader = InMemoryMetricReader()
    if collected_as is not None:
        COLLECTED[collected_as] = reader
    return MeterProvider(metric_readers=[reader])


class SendWrapper:
    """The floor of any send-wrapping middleware: one extra coroutine per message."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def wrapped(message: Any) -> None:
            await send(message)

        await self.app(scope, receive, wrapped)


class CountFloor:
    """Per chunk only what timing needs: a count, the bytes, one clock reading."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        counts = [0, 0, 0.0]
        clock = time.perf_counter

        def counted(message: Any) -> Any:
            if message["type"] == "http.response.body":
                counts[0] += 1
                counts[1] += len(message.get("body", b""))
                counts[2] = clock()
            return send(message)

        await self.app(scope, receive, counted)


def otel_record_cost() -> float:
    """Seconds one SDK ``Histogram.record`` takes with the attributes StreamBoost passes."""
    histogram = meter_provider().get_meter("bench").create_histogram("bench.duration", unit="s")
    attributes: dict[str, str | int] = {"http.request.method": "GET", "http.route": "/stream/{n}"}
    attributes["http.response.status_code"] = 200
    best = float("inf")
    for _ in range(7):
        started = time.perf_counter()
        for _ in range(5000):
            histogram.record(0.01, attributes)
        best = min(best, (time.perf_counter() - started) / 5000)
    return best


def build(variant: str) -> Any:
    """A fresh app for ``variant``, with its own registry or providers."""
    if variant == "bare":
        return base_app()
    if variant == "send-wrapper":
        return SendWrapper(base_app())
    if variant == "count-floor":
        return CountFloor(base_app())
    if variant in ("streamboost", "streamboost-uncollected"):
        return StreamBoost(
            base_app(),
            coalesce=False,
            registry=CollectorRegistry(),
            meter_provider=meter_provider(variant if variant == "streamboost" else None),
        )
    if variant == "streamboost-prom":
        return StreamBoost(base_app(), coalesce=False, registry=CollectorRegistry(), otel=False)
    if variant == "instrumentator":
        app = base_app()
        Instrumentator(registry=CollectorRegistry()).instrument(app)
        return app
    if variant == "starlette-exporter":
        # starlette-exporter has no registry option; its own prefix keeps it apart.
        app = base_app()
        app.add_middleware(PrometheusMiddleware, prefix="bench_se")
        return app
    if variant == "otel-asgi":
        # The SDK providers a user would install; no span exporter, so no export cost counts.
        return OpenTelemetryMiddleware(
            base_app(), tracer_provider=TracerProvider(), meter_provider=meter_provider(variant)
        )
    raise ValueError(f"variant={variant!r} is not one of {VARIANTS}")


def create_app() -> Any:
    """uvicorn factory: the variant named by ``BENCH_VARIANT``."""
    return build(os.environ["BENCH_VARIANT"])


# ---- in-process ---------------------------------------------------------------------------


def _scope(n: int) -> dict[str, Any]:
    path = f"/stream/{n}"
    # What uvicorn sends: spec 2.3, so Starlette also listens for the disconnect.
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"bench"), (b"accept", b"text/event-stream")],
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
    }


async def _one(app: Any, template: dict[str, Any]) -> int:
    """One request the way a server runs it; returns the body bytes received."""
    done = asyncio.Event()
    received = 0
    request = {"type": "http.request", "body": b"", "more_body": False}
    first = True

    async def receive() -> dict[str, Any]:
        nonlocal first
        if first:
            first = False
            return request
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal received
        if message["type"] == "http.response.body":
            received += len(message.get("body", b""))
            if not message.get("more_body", False):
                done.set()

    await app(dict(template), receive, send)
    return received


async def _inprocess(apps: dict[str, Any], n: int, iters: int, rounds: int) -> dict[str, float]:
    template = _scope(n)
    expected = sum(len(c) for c in CHUNKS[:n])
    for name, app in apps.items():
        for _ in range(5):
            got = await _one(app, template)
            if got != expected:
                raise RuntimeError(f"{name}: received {got} bytes, expected {expected}")
    best = dict.fromkeys(apps, float("inf"))
    for _ in range(rounds):
        for name, app in apps.items():  # interleaved: noise hits every variant alike
            reader = COLLECTED.get(name)
            if reader is not None:
                reader.collect()  # not timed: what earlier rounds left
            started = time.perf_counter()
            for _ in range(iters):
                await _one(app, template)
            if reader is not None:
                reader.collect()
            best[name] = min(best[name], (time.perf_counter() - started) / iters)
    return best


# ---- uvicorn ------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _load(port: int, n: int, seconds: float, connections: int = 4) -> float:
    """Seconds per response with ``connections`` keep-alive connections busy."""
    request = f"GET /stream/{n} HTTP/1.1\r\nhost: bench\r\n\r\n".encode()
    end_marker = b"\r\n0\r\n\r\n"
    count = 0
    stop_at = 0.0

    async def worker() -> None:
        nonlocal count
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.perf_counter() < stop_at:
                writer.write(request)
                tail = b""
                while not tail.endswith(end_marker):
                    data = await reader.read(262144)
                    if not data:
                        raise RuntimeError("the server closed the connection")
                    tail = (tail + data)[-16:]
                count += 1
        finally:
            writer.close()

    stop_at = time.perf_counter() + 0.1  # warm-up
    await asyncio.gather(*(worker() for _ in range(connections)))
    count = 0
    started = time.perf_counter()
    stop_at = started + seconds
    await asyncio.gather(*(worker() for _ in range(connections)))
    return (time.perf_counter() - started) / count


@contextmanager
def _uvicorn_servers() -> Iterator[dict[str, int]]:
    """One uvicorn process per variant, all up at once so rounds can interleave."""
    procs: list[subprocess.Popen[bytes]] = []
    ports: dict[str, int] = {}
    try:
        for variant in VARIANTS:
            port = ports[variant] = _free_port()
            env = {**os.environ, "BENCH_VARIANT": variant, "PYTHONPATH": str(ROOT)}
            argv = [sys.executable, "-m", "uvicorn", "benchmarks.bench_overhead:create_app"]
            argv += ["--factory", "--host", "127.0.0.1", "--port", str(port)]
            procs.append(subprocess.Popen([*argv, "--log-level", "warning"], env=env, cwd=ROOT))
        deadline = time.monotonic() + 30
        for variant, port in ports.items():
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"uvicorn for {variant} did not start") from None
                    time.sleep(0.05)
        yield ports
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(10)


def _served(seconds: float, rounds: int) -> dict[str, dict[int, float]]:
    best = {variant: dict.fromkeys(SIZES, float("inf")) for variant in VARIANTS}
    with _uvicorn_servers() as ports:
        for _ in range(rounds):
            for n in SIZES:
                for variant, port in ports.items():
                    per = asyncio.run(_load(port, n, seconds))
                    best[variant][n] = min(best[variant][n], per)
    return best


# ---- report -------------------------------------------------------------------------------


def _table(title: str, results: dict[str, dict[int, float]]) -> None:
    print(f"\n{title}")
    head = "".join(f"  N={n:<4} us/req  ratio" for n in SIZES)
    print(f"{'variant':<24}{head}")
    for variant in VARIANTS:
        cells = ""
        for n in SIZES:
            per = results[variant][n]
            ratio = per / results["bare"][n]
            cells += f"  {per * 1e6:>12.1f}  {ratio:>5.2f}x"
        print(f"{variant:<24}{cells}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer iterations (smoke run)")
    parser.add_argument("--no-uvicorn", action="store_true", help="in-process only")
    args = parser.parse_args(argv)
    scale = 0.2 if args.quick else 1.0
    began = time.perf_counter()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs (shared, noisy machine)")

    apps = {variant: build(variant) for variant in VARIANTS}
    inprocess: dict[str, dict[int, float]] = {variant: {} for variant in VARIANTS}
    plan: dict[int, tuple[int, int]] = {1: (400, 7), 20: (200, 7), 200: (40, 7)}
    for n in SIZES:
        iters, rounds = plan[n]
        best = asyncio.run(_inprocess(apps, n, max(5, int(iters * scale)), rounds))
        for variant, per in best.items():
            inprocess[variant][n] = per
    _table("in-process (best of interleaved rounds)", inprocess)

    if not args.no_uvicorn:
        served = _served(0.3 * scale, rounds=5)
        title = "uvicorn, 4 keep-alive connections (per-request time from throughput, best of 5)"
        _table(title, served)

    record = otel_record_cost()
    budget = 0.10 * inprocess["bare"][200]
    print(
        f"\nOpenTelemetry SDK Histogram.record: {record * 1e6:.1f} us per call, 3 per stream "
        f"= {3 * record * 1e6:.1f} us; the whole 1.10x budget at N=200 is {budget * 1e6:.1f} us"
    )
    floor = inprocess["count-floor"]
    print(
        "count-floor (count + bytes + clock per chunk, nothing else) vs bare: "
        + ", ".join(f"N={n}: {floor[n] / inprocess['bare'][n]:.2f}x" for n in SIZES)
    )
    for name in ("streamboost", "streamboost-uncollected", "streamboost-prom"):
        mine = inprocess[name]
        ratios = ", ".join(f"N={n}: {mine[n] / inprocess['bare'][n]:.2f}x" for n in SIZES)
        cheaper = [
            f"N={n}: " + ("yes" if all(mine[n] < inprocess[v][n] for v in ALTERNATIVES) else "no")
            for n in SIZES
        ]
        print(
            f"\n{name} in-process vs bare: {ratios} (targets: <= 1.25x at N=1, <= 1.10x at N=200)"
        )
        print(f"{name} cheaper than each of {', '.join(ALTERNATIVES)}: {', '.join(cheaper)}")
    print(f"total run {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
