"""Memory per open stream: bare vs StreamBoost, counted by tracemalloc (not timed).

    uv run python benchmarks/bench_memory.py [--streams 1000] [--shape token|openai|anthropic]
        [--repeat 3]

Issue 13's target 4: at most bare + 2 KiB per open stream. N streams are opened at once on one
event loop, straight through the ASGI app (no server: a server's own per-connection memory is
the same for both and would only add noise). Each stream has sent its first events, one of
them content, and is waiting for the next token, which is how a chat stream spends its life.
The figure is the memory Python allocated with all N open (``tracemalloc``, after a GC) minus
the same loop with none, divided by N; allocation counts do not depend on the machine's load,
but a run can land ~130 B off (free lists and container resizes falling on one side of the
snapshot or the other), so each figure is the median of ``--repeat`` runs. Prints, never
asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import tracemalloc
from collections.abc import AsyncIterator, Callable
from typing import Any

from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from streamboost import CoalesceConfig, StreamBoost

SHAPES = {
    "token": (b'data: {"token": "Hi"}\n\n',),
    "openai": (
        b'data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,'
        b'"delta":{"role":"assistant","content":""}}]}\n\n',
        b'data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,'
        b'"delta":{"content":"Hi"}}]}\n\n',
    ),
    "anthropic": (
        b'event: message_start\ndata: {"type":"message_start","message":{"id":"m1"}}\n\n',
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
        b'"delta":{"type":"text_delta","text":"Hi"}}\n\n',
    ),
}


def make_app(events: tuple[bytes, ...], hold: asyncio.Event, opened: list[int]) -> Starlette:
    async def stream(request: Request) -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            for event in events:
                yield event
            opened[0] += 1
            await hold.wait()  # waiting for the next token
            yield b"data: [DONE]\n\n"

        return StreamingResponse(body(), media_type="text/event-stream")

    return Starlette(routes=[Route("/chat", stream)])


def scope() -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/chat",
        "raw_path": b"/chat",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }


async def per_stream(wrap: Callable[[Any], Any], shape: str, streams: int) -> float:
    """Bytes allocated per open stream by the app ``wrap`` returns."""
    hold, opened = asyncio.Event(), [0]
    app = wrap(make_app(SHAPES[shape], hold, opened))
    done = asyncio.Event()

    async def receive() -> dict[str, Any]:
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        return None

    # Warm up: one stream start to end, so caches and lazy imports are not counted.
    hold.set()
    await app(scope(), receive, send)
    hold.clear()
    opened[0] = 0
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    tasks = [asyncio.ensure_future(app(scope(), receive, send)) for _ in range(streams)]
    for _ in range(10_000):
        if opened[0] == streams:
            break
        await asyncio.sleep(0.001)
    await asyncio.sleep(0.2)  # past a coalescing window: any flush due has happened
    gc.collect()
    during = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    hold.set()
    await asyncio.gather(*tasks)
    done.set()
    return (during - before) / streams


def configs() -> dict[str, Callable[[Any], Any]]:
    return {
        "bare": lambda app: app,
        "streamboost prom, no coalescing": lambda app: StreamBoost(
            app, coalesce=False, registry=CollectorRegistry(), otel=False
        ),
        "streamboost prom + coalescing": lambda app: StreamBoost(
            app, coalesce=CoalesceConfig(), registry=CollectorRegistry(), otel=False
        ),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--shape", choices=sorted(SHAPES), action="append")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (median)")
    args = parser.parse_args()
    # Process-wide containers (asyncio's set of all tasks, the loop's queues) grow to hold N
    # streams once and stay grown: one unmeasured round first, or the first figure (bare's)
    # would carry that growth (~150-300 B a stream) and every "added" would look smaller.
    await per_stream(configs()["bare"], "token", args.streams)
    for shape in args.shape or ["token", "openai", "anthropic"]:
        print(f"shape {shape}, {args.streams} open streams (tracemalloc, bytes per stream)")
        bare = None
        for name, wrap in configs().items():
            runs = [await per_stream(wrap, shape, args.streams) for _ in range(args.repeat)]
            size = statistics.median(runs)
            bare = size if bare is None else bare
            if name == "bare":
                print(f"  {name:34s} {size:8.0f} B")
                continue
            verdict = "PASS" if size - bare <= 2048 else "FAIL"
            print(f"  {name:34s} {size:8.0f} B  added {size - bare:+6.0f} B  {verdict} (<= +2048)")


if __name__ == "__main__":
    asyncio.run(main())
