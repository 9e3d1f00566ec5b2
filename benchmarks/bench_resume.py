"""What resumable streams cost, on real uvicorn and real Redis (prints, asserts nothing).

    uv run python benchmarks/bench_resume.py [--streams N] [--tokens T] [--redis URL]

Two uvicorn processes serve the same StreamBoost-wrapped Starlette app (an OpenAI-style SSE
stream of ``T`` content chunks, 1 ms apart, coalescing on), one with ``resume=`` and one
without. Each gets ``N`` streams (8 at a time) from an httpx client, then ``N`` more one at a
time for time to first token. Printed: Redis writes per stream (``INFO commandstats`` deltas:
XADD, EXPIRE; Redis is shared, so other clients' commands would count too), the server
process's CPU seconds per stream (``/proc/<pid>/stat``) with resume on and off and their
ratio, and time to first token (client: request sent -> first content byte) p50/p99 on and
off and the difference. Targets: at most one XADD per flushed batch, at most 1.2x CPU, under
1 ms of added TTFT at p99.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson

HERE = os.path.dirname(os.path.abspath(__file__))


def make_app() -> Any:
    from prometheus_client import CollectorRegistry
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import StreamingResponse
    from starlette.routing import Route

    from streamboost import ResumeConfig, StreamBoost

    async def chat(request: Request) -> StreamingResponse:
        tokens = int(request.query_params.get("tokens", "200"))

        async def body() -> AsyncIterator[bytes]:
            for i in range(tokens):
                chunk = {"id": "c1", "object": "chat.completion.chunk", "model": "m",
                         "choices": [{"index": 0, "delta": {"content": f"t{i} "}}]}  # fmt: skip
                yield b"data: " + orjson.dumps(chunk) + b"\n\n"
                await asyncio.sleep(0.001)
            yield b"data: [DONE]\n\n"

        return StreamingResponse(body(), media_type="text/event-stream")

    resume = None
    if os.environ.get("BENCH_RESUME") == "on":
        resume = ResumeConfig(
            redis_url=os.environ["BENCH_REDIS"],
            owner=lambda scope: "bench-user",
            key_prefix=os.environ["BENCH_PREFIX"],
            ttl=60.0,
        )
    app = Starlette(routes=[Route("/chat", chat)])
    return StreamBoost(app, registry=CollectorRegistry(), otel=False, resume=resume)


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start(mode: str, redis: str, prefix: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "BENCH_RESUME": mode, "BENCH_REDIS": redis, "BENCH_PREFIX": prefix}
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "bench_resume:make_app", "--app-dir",
         HERE, "--port", str(port), "--log-level", "warning"],
        env=env, start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            httpx.get(base + "/metrics", timeout=1.0)
            return proc, base
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError("the server did not start")


async def commandstats(client: Any) -> dict[str, int]:
    info = await client.info("commandstats")
    return {name: int(v["calls"]) for name, v in info.items() if name.startswith("cmdstat_")}


async def run(base: str, streams: int, tokens: int) -> list[float]:
    limit = asyncio.Semaphore(8)
    async with httpx.AsyncClient(timeout=60.0) as http:

        async def one() -> None:
            async with limit, http.stream("GET", f"{base}/chat?tokens={tokens}") as r:
                async for _ in r.aiter_raw():
                    pass

        await asyncio.gather(*(one() for _ in range(streams)))
        ttft: list[float] = []
        for _ in range(streams):
            started = time.perf_counter()
            async with http.stream("GET", f"{base}/chat?tokens=5") as r:
                async for chunk in r.aiter_raw():
                    if b"data: {" in chunk:
                        ttft.append(time.perf_counter() - started)
                        break
        return ttft


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


async def main() -> None:
    import redis.asyncio as aioredis

    parser = argparse.ArgumentParser()
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    prefix = f"sbbench:resume:{uuid.uuid4().hex[:8]}:"
    client: Any = aioredis.Redis.from_url(args.redis)
    results: dict[str, dict[str, float]] = {}
    try:
        for mode in ("off", "on", "off", "on"):  # interleaved; the second round is kept
            proc, base = start(mode, args.redis, prefix)
            try:
                await run(base, 10, args.tokens)  # warm-up
                before_cpu, before = cpu_seconds(proc.pid), await commandstats(client)
                ttft = await run(base, args.streams, args.tokens)
                cpu, after = cpu_seconds(proc.pid) - before_cpu, await commandstats(client)
            finally:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(10)
            total = 2 * args.streams  # the concurrent round and the TTFT round
            xadd = after.get("cmdstat_xadd", 0) - before.get("cmdstat_xadd", 0)
            expire = after.get("cmdstat_expire", 0) - before.get("cmdstat_expire", 0)
            results[mode] = {
                "xadd_long": xadd / total,
                "expire": expire / total,
                "cpu": cpu / total,
                "p50": pct(ttft, 0.5),
                "p99": pct(ttft, 0.99),
            }
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()
    on, off = results["on"], results["off"]
    print(f"streams {args.streams} x2 per mode ({args.tokens}-token and 5-token streams)")
    print(f"Redis per stream, resume on: XADD {on['xadd_long']:.2f}, EXPIRE {on['expire']:.2f}")
    print(f"  (off: XADD {off['xadd_long']:.2f}; a {args.tokens}-token stream has "
          f"{args.tokens + 1} events)")  # fmt: skip
    print(f"server CPU per stream: off {off['cpu'] * 1e3:.2f} ms, on {on['cpu'] * 1e3:.2f} ms, "
          f"ratio {on['cpu'] / off['cpu']:.2f}x")  # fmt: skip
    print(f"TTFT p50: off {off['p50'] * 1e3:.3f} ms, on {on['p50'] * 1e3:.3f} ms")
    print(f"TTFT p99: off {off['p99'] * 1e3:.3f} ms, on {on['p99'] * 1e3:.3f} ms, "
          f"added {(on['p99'] - off['p99']) * 1e3:+.3f} ms")  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
