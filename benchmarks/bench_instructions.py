"""Instruction counts per streamed request under valgrind's callgrind: StreamBoost against the
bare app and the middlewares a user would pick instead, for several stream shapes.

    uv run python benchmarks/bench_instructions.py [--quick] [--shapes token,openai]
        [--configs bare,streamboost-prom,instrumentator] [--jobs 2] [--no-wall]

Instruction counts are what a noisy shared machine cannot disturb, so this is the benchmark to
steer the send path by; wall time per request is measured beside it (without valgrind).

Every configuration wraps the same Starlette app: ``GET /{shape}/{n}`` streams n chunks of one
shape with ``StreamingResponse``. The configurations:

- ``bare``: the Starlette app alone;
- ``streamboost-prom``: ``StreamBoost(coalesce=False, otel=False)``, Prometheus only (its own
  ``CollectorRegistry``): the price of measuring alone;
- ``streamboost-coalesce``: the same with the default coalescing;
- ``streamboost-otel``: ``StreamBoost(coalesce=False)`` with OpenTelemetry on, an SDK
  ``MeterProvider`` with an in-memory reader (and Prometheus, as by default);
- ``instrumentator``: prometheus-fastapi-instrumentator with its default metrics;
- ``starlette-exporter``: its ``PrometheusMiddleware``;
- ``otel-asgi``: opentelemetry-instrumentation-asgi's ``OpenTelemetryMiddleware`` with SDK
  tracer and meter providers (no span exporter).

StreamBoost hands OpenTelemetry measurements to the SDK when a reader collects, so the
measured block of ``streamboost-otel`` and ``otel-asgi`` ends with a collection of their reader.

Shapes: ``token`` (``data: {"token": "..."}``), ``openai`` (``chat.completion.chunk`` with id,
created, model, choices, delta content and ``finish_reason: null``), ``ndjson``
(``{"token":"..."}`` lines, ``application/x-ndjson``), ``anthropic`` (Messages
``event: content_block_delta`` with a ``text_delta``), ``text`` (``text/plain`` chunks),
``openai-live`` (a chat chunk as OpenAI's API sends it today: service tier, fingerprint,
logprobs and the ``obfuscation`` padding of varying length after the content), ``responses``
(OpenAI's Responses API ``response.output_text.delta`` events: a counting ``sequence_number``,
the delta and the padding), ``gemini`` (Gemini's ``streamGenerateContent`` chunks: CRLF, the
text before the role and growing token counts), ``crlf`` (the
token shape with CRLF line endings, as sse-starlette's ``EventSourceResponse`` and Gemini's API
write them), and two shapes whose chunks are not one event each: ``batched`` (two OpenAI events
per chunk) and ``relay`` (the OpenAI stream cut every 300 bytes, as a relay's reads of an
upstream arrive), also as ``relay-crlf`` with CRLF line endings.

How it counts: one child Python process per configuration runs under
``valgrind --tool=callgrind --dump-before=getpgrp``; it builds the app and warms up every shape
and N (checking the bytes received), uninstrumented where a C compiler can build the two-line
library that turns callgrind's instrumentation on afterwards (``--instr-atstart=no``); then for
each shape and N it drives the app directly (a minimal server loop with fake receive/send, no
server) for zero requests and for R requests. Each
``os.getpgrp()`` call (used for nothing else) makes callgrind dump the instructions counted
since the previous one, so every block is counted on its own; instructions per request are
(block of R requests - block of none) / R, in which the loop's set-up cancels. Hash
randomization is off in the children (``PYTHONHASHSEED=0``).

Prints per (config, shape, N) the instructions per request and the ratio to bare, the marginal
cost per chunk ((count at N=200 - count at N=1) / 199) and what it adds to bare's, then the
in-process wall time and CPU time (``process_time``, which leaves out the time other processes
hold the core) per request, each the best of interleaved rounds in one process without
valgrind, and the targets of issue 13 as PASS/FAIL text. Asserts nothing.
``STREAMBOOST_NO_EXTENSIONS=1`` in the environment measures the pure-Python send path.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

SIZES = (1, 20, 200)
CONFIGS = (
    "bare",
    "streamboost-prom",
    "streamboost-coalesce",
    "streamboost-otel",
    "instrumentator",
    "starlette-exporter",
    "otel-asgi",
)
PEERS = ("instrumentator", "starlette-exporter", "otel-asgi")
SHAPES = (
    "token",
    "openai",
    "ndjson",
    "anthropic",
    "text",
    "openai-live",
    "responses",
    "gemini",
    "crlf",
    "batched",
    "relay",
    "relay-crlf",
)
# Requests per counted block (callgrind runs Python some 50x slower).
REQUESTS = {1: 40, 20: 16, 200: 6}
QUICK_REQUESTS = {1: 12, 20: 6, 200: 3}


# ---- the app ----------------------------------------------------------------------------------


def _token(i: int) -> bytes:
    return b'data: {"token": " tok%d"}\n\n' % i


def _openai(i: int) -> bytes:
    return (
        b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,'
        b'"model":"sim","choices":[{"index":0,"delta":{"content":" tok%d"},'
        b'"finish_reason":null}]}\n\n' % i
    )


_OBFUSCATION = b"Zk3pQ9xWmT2vLr8Y"


def _openai_live(i: int) -> bytes:
    # As OpenAI's API sends a chat chunk today: service tier, fingerprint, logprobs and the
    # "obfuscation" string of random characters whose length pads the chunk's size.
    pad = _OBFUSCATION[: 1 + (i * 7) % len(_OBFUSCATION)]
    return (
        b'data: {"id":"chatcmpl-CmP2x7","object":"chat.completion.chunk","created":1764700000,'
        b'"model":"gpt-4o-mini-2024-07-18","service_tier":"default",'
        b'"system_fingerprint":"fp_51db84afab","choices":[{"index":0,'
        b'"delta":{"content":" tok%d"},"logprobs":null,"finish_reason":null}],'
        b'"obfuscation":"%s"}\n\n' % (i, pad)
    )


def _responses(i: int) -> bytes:
    # OpenAI's Responses API: a typed event whose sequence_number counts up (its length
    # varies), the delta string and the obfuscation padding of varying length.
    pad = _OBFUSCATION[: 1 + (i * 5) % len(_OBFUSCATION)]
    return (
        b"event: response.output_text.delta\n"
        b'data: {"type":"response.output_text.delta","sequence_number":%d,'
        b'"item_id":"msg_68a1b2c3d4e5f60718293a4b","output_index":0,"content_index":0,'
        b'"delta":" tok%d","logprobs":[],"obfuscation":"%s"}\n\n' % (i + 4, i, pad)
    )


def _gemini(i: int) -> bytes:
    # Gemini's API (streamGenerateContent?alt=sse): CRLF line endings, the text string
    # before the role, index and usage metadata, whose token counts grow.
    return (
        b'data: {"candidates": [{"content": {"parts": [{"text": " tok%d"}],"role": "model"},'
        b'"index": 0}],"usageMetadata": {"promptTokenCount": 5,"candidatesTokenCount": %d,'
        b'"totalTokenCount": %d},"modelVersion": "gemini-2.0-flash",'
        b'"responseId": "mQ2yaPq-Hc2vgLUPw4vR8Qs"}\r\n\r\n' % (i, i + 1, i + 6)
    )


def _crlf(i: int) -> bytes:
    # sse-starlette's EventSourceResponse ends its lines CRLF (and so does Gemini's API).
    return b'data: {"token": " tok%d"}\r\n\r\n' % i


def _ndjson(i: int) -> bytes:
    return b'{"token":" tok%d"}\n' % i


def _anthropic(i: int) -> bytes:
    return (
        b"event: content_block_delta\n"
        b'data: {"type":"content_block_delta","index":0,'
        b'"delta":{"type":"text_delta","text":" tok%d"}}\n\n' % i
    )


def _text(i: int) -> bytes:
    return b" tok%d" % i


SHAPE_CHUNKS: dict[str, tuple[Callable[[int], bytes], str]] = {
    "token": (_token, "text/event-stream"),
    "openai": (_openai, "text/event-stream"),
    "openai-live": (_openai_live, "text/event-stream"),
    "responses": (_responses, "text/event-stream"),
    "gemini": (_gemini, "text/event-stream"),
    "crlf": (_crlf, "text/event-stream"),
    "ndjson": (_ndjson, "application/x-ndjson"),
    "anthropic": (_anthropic, "text/event-stream"),
    "text": (_text, "text/plain"),
}
CHUNKS = {shape: [make(i) for i in range(max(SIZES))] for shape, (make, _) in SHAPE_CHUNKS.items()}
# Chunks that are not one whole event each, as an app batching its own events and a relay
# of an upstream stream (``async for chunk in upstream.aiter_bytes(): yield chunk``) send:
# two OpenAI events per chunk, and the OpenAI stream cut every 300 bytes, events split anywhere.
_RELAYED = b"".join(_openai(i) for i in range(2 * max(SIZES)))
CHUNKS["batched"] = [_openai(2 * i) + _openai(2 * i + 1) for i in range(max(SIZES))]
CHUNKS["relay"] = [_RELAYED[i : i + 300] for i in range(0, 300 * max(SIZES), 300)]
# The same relay of an upstream whose lines end CRLF (sse-starlette's, Gemini's).
_RELAYED_CRLF = _RELAYED.replace(b"\n", b"\r\n")
CHUNKS["relay-crlf"] = [_RELAYED_CRLF[i : i + 300] for i in range(0, 300 * max(SIZES), 300)]
SHAPE_CHUNKS["relay-crlf"] = (_openai, "text/event-stream")
SHAPE_CHUNKS["batched"] = SHAPE_CHUNKS["relay"] = (_openai, "text/event-stream")


def base_app() -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import StreamingResponse
    from starlette.routing import Route

    async def stream(request: Request) -> StreamingResponse:
        shape: str = request.path_params["shape"]
        chunks = CHUNKS[shape][: request.path_params["n"]]

        async def body() -> AsyncIterator[bytes]:
            for chunk in chunks:
                yield chunk

        return StreamingResponse(body(), media_type=SHAPE_CHUNKS[shape][1])

    return Starlette(routes=[Route("/{shape}/{n:int}", stream)])


def build(config: str) -> tuple[Any, Any]:
    """A fresh app for ``config`` and the metric reader to collect after each block (or None)."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from prometheus_client import CollectorRegistry

    from streamboost import StreamBoost

    if config == "bare":
        return base_app(), None
    if config == "streamboost-prom":
        app = StreamBoost(base_app(), coalesce=False, otel=False, registry=CollectorRegistry())
        return app, None
    if config == "streamboost-coalesce":
        return StreamBoost(base_app(), otel=False, registry=CollectorRegistry()), None
    if config == "streamboost-otel":
        reader = InMemoryMetricReader()
        app = StreamBoost(
            base_app(),
            coalesce=False,
            registry=CollectorRegistry(),
            meter_provider=MeterProvider(metric_readers=[reader]),
        )
        return app, reader
    if config == "instrumentator":
        from prometheus_fastapi_instrumentator import Instrumentator

        app = base_app()
        Instrumentator(registry=CollectorRegistry()).instrument(app)
        return app, None
    if config == "starlette-exporter":
        from starlette_exporter import PrometheusMiddleware

        # starlette-exporter has no registry option; its own prefix keeps it apart.
        app = base_app()
        app.add_middleware(PrometheusMiddleware, prefix="bench_se")
        return app, None
    if config == "otel-asgi":
        from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
        from opentelemetry.sdk.trace import TracerProvider

        reader = InMemoryMetricReader()
        app = OpenTelemetryMiddleware(
            base_app(),
            tracer_provider=TracerProvider(),
            meter_provider=MeterProvider(metric_readers=[reader]),
        )
        return app, reader
    raise ValueError(f"config={config!r} is not one of {', '.join(CONFIGS)}")


# ---- the driver: a minimal server loop ------------------------------------------------------


def _scope(shape: str, n: int) -> dict[str, Any]:
    path = f"/{shape}/{n}"
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
        "headers": [(b"host", b"bench"), (b"accept", b"*/*")],
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
    }


async def _one(app: Any, template: dict[str, Any]) -> int:
    """One request the way a server runs it; returns the body bytes received."""
    done = asyncio.Event()
    received = 0
    first = True

    async def receive() -> dict[str, Any]:
        nonlocal first
        if first:
            first = False
            return {"type": "http.request", "body": b"", "more_body": False}
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


async def _block(app: Any, reader: Any, template: dict[str, Any], requests: int) -> None:
    for _ in range(requests):
        await _one(app, template)
    if reader is not None:
        reader.collect()


async def _warm(app: Any, reader: Any, shape: str, n: int, requests: int = 3) -> None:
    template = _scope(shape, n)
    expected = sum(len(chunk) for chunk in CHUNKS[shape][:n])
    for _ in range(requests):
        got = await _one(app, template)
        if got != expected:
            raise RuntimeError(f"{shape} N={n}: received {got} bytes, expected {expected}")
    if reader is not None:
        reader.collect()


def child(config: str, plan: list[tuple[str, int, int]], start_lib: str | None) -> None:
    """Runs under callgrind: every ``os.getpgrp()`` ends a counted block (see the docstring)."""
    app, reader = build(config)
    loop = asyncio.new_event_loop()
    for shape, n, _ in plan:  # first requests (lazy imports, caches), before instrumenting
        loop.run_until_complete(_warm(app, reader, shape, n))
    gc.collect()
    gc.freeze()  # what set-up left is not the requests' garbage
    if start_lib is not None:
        ctypes.CDLL(start_lib).streamboost_bench_start()
    segments: list[str] = []

    def mark(label: str) -> None:
        os.getpgrp()
        segments.append(label)

    mark("setup")
    for shape, n, requests in plan:
        loop.run_until_complete(_warm(app, reader, shape, n, requests=1))
        template = _scope(shape, n)
        for block in (0, requests):
            gc.collect()
            mark("prepare")
            loop.run_until_complete(_block(app, reader, template, block))
            mark(f"{shape}:{n}:{block}")
    loop.close()
    print(json.dumps(segments))


_START_C = """#include <valgrind/callgrind.h>
void streamboost_bench_start(void) { CALLGRIND_START_INSTRUMENTATION; }
"""


def start_library(workdir: Path) -> Path | None:
    """A tiny shared library whose one function turns callgrind's instrumentation on, so the
    children's imports and set-up run uninstrumented (several times faster); None when no C
    compiler or valgrind header is at hand (then everything is instrumented, only slower)."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        return None
    source, library = workdir / "start.c", workdir / "start.so"
    source.write_text(_START_C)
    built = subprocess.run(
        [compiler, "-shared", "-fPIC", "-O1", "-o", str(library), str(source)],
        capture_output=True,
        check=False,
    )
    return library if built.returncode == 0 else None


# ---- the parent -----------------------------------------------------------------------------


def _callgrind_total(path: Path) -> int:
    for line in path.read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise RuntimeError(f"{path}: no summary line")


def count(
    config: str, plan: list[tuple[str, int, int]], workdir: Path, start_lib: Path | None
) -> dict[str, int]:
    """Instructions per block label of ``config``'s child run under callgrind."""
    out = workdir / f"{config}.cg"
    command = [
        "valgrind", "--tool=callgrind", "--dump-before=getpgrp", f"--callgrind-out-file={out}",
        sys.executable, __file__, "--child", config, "--plan", json.dumps(plan),
    ]  # fmt: skip
    if start_lib is not None:
        command[2:2] = ["--instr-atstart=no"]
        command += ["--start-lib", str(start_lib)]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{config}: child failed ({done.returncode}):\n{done.stderr[-3000:]}")
    segments: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    dumps = sorted(workdir.glob(f"{config}.cg.*"), key=lambda p: int(p.suffix[1:]))
    if len(dumps) != len(segments):
        raise RuntimeError(f"{config}: {len(dumps)} callgrind dumps for {len(segments)} blocks")
    return {label: _callgrind_total(path) for label, path in zip(segments, dumps, strict=True)}


def per_request(blocks: dict[str, int], plan: list[tuple[str, int, int]]) -> dict[Any, float]:
    result: dict[Any, float] = {}
    for shape, n, requests in plan:
        empty, full = blocks[f"{shape}:{n}:0"], blocks[f"{shape}:{n}:{requests}"]
        result[shape, n] = (full - empty) / requests
    return result


async def _wall_round(
    app: Any, reader: Any, template: dict[str, Any], iters: int
) -> tuple[float, float]:
    if reader is not None:
        reader.collect()  # not timed: what earlier rounds left
    started, cpu = time.perf_counter(), time.process_time()
    for _ in range(iters):
        await _one(app, template)
    if reader is not None:
        reader.collect()
    return (time.perf_counter() - started) / iters, (time.process_time() - cpu) / iters


def wall(configs: list[str], shapes: list[str], quick: bool) -> dict[Any, float]:
    """Seconds per request in-process, wall and CPU (``time.process_time``, which leaves out
    the time other processes hold the core): each the best of interleaved rounds, every config
    in this process. Keys: (config, shape, n) for wall, ("cpu", config, shape, n) for CPU."""
    apps = {config: build(config) for config in configs}
    # Rounds of ~20 ms for bare (it runs ~0.3 ms at N=1 and ~1.5 ms at N=200 here).
    iters = {1: 60, 20: 40, 200: 12}
    rounds = 3 if quick else 7
    best: dict[Any, float] = {}
    loop = asyncio.new_event_loop()
    for shape in shapes:
        for n in SIZES:
            template = _scope(shape, n)
            for app, reader in apps.values():
                loop.run_until_complete(_warm(app, reader, shape, n))
            for _ in range(rounds):
                for config, (app, reader) in apps.items():  # interleaved: noise hits all alike
                    per, cpu = loop.run_until_complete(_wall_round(app, reader, template, iters[n]))
                    for key, value in (((config, shape, n), per), (("cpu", config, shape, n), cpu)):
                        best[key] = min(best.get(key, float("inf")), value)
    loop.close()
    return best


def _table(
    title: str, unit: str, scale: float, configs: list[str], shapes: list[str], value: Any
) -> None:
    print(f"\n{title}")
    for shape in shapes:
        head = "".join(f"  N={n:<4}{unit:>10}  ratio" for n in SIZES)
        print(f"\n  shape {shape} ({SHAPE_CHUNKS[shape][1]})")
        print(f"  {'config':<22}{head}")
        for config in configs:
            cells = ""
            for n in SIZES:
                mine, bare = value(config, shape, n), value("bare", shape, n)
                cells += f"  {mine * scale:>16.1f}  {mine / bare:>5.2f}x"
            print(f"  {config:<22}{cells}")


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def report(
    configs: list[str], shapes: list[str], counts: dict[Any, float], walls: dict[Any, float] | None
) -> None:
    def instr(config: str, shape: str, n: int) -> float:
        return counts[config, shape, n]

    _table("instructions per request (callgrind), k = 1000", "kinstr", 1e-3, configs, shapes, instr)

    def marginal(config: str, shape: str) -> float:
        return (instr(config, shape, 200) - instr(config, shape, 1)) / 199

    print("\nper chunk: instructions ((N=200 - N=1) / 199), and added to bare's")
    print(f"  {'config':<22}" + "".join(f"{shape:>22}" for shape in shapes))
    for config in configs:
        cells = ""
        for shape in shapes:
            mine, bare = marginal(config, shape), marginal("bare", shape)
            cells += f"{mine:>12.0f} ({mine - bare:+7.0f})"
        print(f"  {config:<22}{cells}")

    if walls is not None:

        def timed(config: str, shape: str, n: int) -> float:
            return walls[config, shape, n]

        title = "wall time per request in-process, no valgrind (best of interleaved rounds)"
        _table(title, "us", 1e6, configs, shapes, timed)

        def cpu(config: str, shape: str, n: int) -> float:
            return walls["cpu", config, shape, n]

        title = "CPU time per request in the same rounds (process_time: others' load left out)"
        _table(title, "us", 1e6, configs, shapes, cpu)

    print("\ntargets (issue 13), from the instruction counts")
    peers = [p for p in PEERS if p in configs]
    mine_configs = [c for c in configs if c.startswith("streamboost")]
    for shape in shapes:
        bare_chunk = marginal("bare", shape)
        if peers:
            best_peer = min(peers, key=lambda p: marginal(p, shape))
            best_added = marginal(best_peer, shape) - bare_chunk
            for config in mine_configs:
                added = marginal(config, shape) - bare_chunk
                print(
                    f"  {shape:<10} {config:<21} per-chunk added {added:>7.0f} <= 2x best peer"
                    f" ({best_peer} {best_added:.0f}, limit {2 * best_added:.0f}):"
                    f" {_verdict(added <= 2 * best_added)}"
                )
        if "streamboost-prom" in configs:
            for n, limit in ((200, 1.10), (1, 1.15)):
                ratio = instr("streamboost-prom", shape, n) / instr("bare", shape, n)
                print(
                    f"  {shape:<10} streamboost-prom      N={n:<3} {ratio:.3f}x bare"
                    f" <= {limit:.2f}x: {_verdict(ratio <= limit)}"
                )
        if "streamboost-otel" in configs and peers:
            cheaper = [
                all(instr("streamboost-otel", shape, n) < instr(p, shape, n) for p in peers)
                for n in SIZES
            ]
            pairs = zip(SIZES, cheaper, strict=True)
            detail = ", ".join(f"N={n} {_verdict(ok)}" for n, ok in pairs)
            print(
                f"  {shape:<10} streamboost-otel      cheaper than each of {', '.join(peers)}:"
                f" {detail}: {_verdict(all(cheaper))}"
            )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer requests per block")
    parser.add_argument("--shapes", default=",".join(SHAPES), help="comma-separated shapes")
    parser.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated configs")
    parser.add_argument("--jobs", type=int, default=2, help="callgrind children at once")
    parser.add_argument("--no-wall", action="store_true", help="skip the wall-time table")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--plan", help=argparse.SUPPRESS)
    parser.add_argument("--start-lib", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, [tuple(step) for step in json.loads(args.plan)], args.start_lib)
        return

    shapes = [s for s in args.shapes.split(",") if s]
    configs = [c for c in args.configs.split(",") if c]
    for name, chosen, known in (("shapes", shapes, SHAPES), ("configs", configs, CONFIGS)):
        unknown = sorted(set(chosen) - set(known))
        if unknown:
            parser.error(f"--{name}: {', '.join(unknown)} unknown; choose from {', '.join(known)}")
    if "bare" not in configs:
        configs.insert(0, "bare")  # every ratio is to bare
    if shutil.which("valgrind") is None:
        parser.error("valgrind is not installed (apt-get install -y valgrind)")
    requests = QUICK_REQUESTS if args.quick else REQUESTS
    plan = [(shape, n, requests[n]) for shape in shapes for n in SIZES]
    began = time.perf_counter()
    path = "pure Python" if os.environ.get("STREAMBOOST_NO_EXTENSIONS") else "default"
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, send path: {path}")
    print(f"requests per counted block: {', '.join(f'N={n}: {r}' for n, r in requests.items())}")

    walls = None if args.no_wall else wall(configs, shapes, args.quick)
    walled = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-callgrind-") as tmp:
        start_lib = start_library(Path(tmp))
        if start_lib is None:
            print("no C compiler or valgrind header: set-up is instrumented too (slower)")
        with ThreadPoolExecutor(max(1, args.jobs)) as pool:
            # The slowest first, so that two jobs end together.
            order = sorted(configs, key=lambda c: c not in ("otel-asgi", "streamboost-coalesce"))
            futures = {c: pool.submit(count, c, plan, Path(tmp), start_lib) for c in order}
            blocks = {c: f.result() for c, f in futures.items()}
    counts: dict[Any, float] = {}
    for config, labelled in blocks.items():
        for (shape, n), value in per_request(labelled, plan).items():
            counts[config, shape, n] = value
    report(configs, shapes, counts, walls)
    print(
        f"\ntotal run {time.perf_counter() - began:.0f} s (wall-time phase"
        f" {walled - began:.0f} s, callgrind {time.perf_counter() - walled:.0f} s)"
    )


if __name__ == "__main__":
    main()
