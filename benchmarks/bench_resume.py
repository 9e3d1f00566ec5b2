"""What resumable streams cost, on real uvicorn and real Redis (prints, asserts nothing).

    uv run python benchmarks/bench_resume.py [--streams N] [--tokens T] [--redis URL]

Two uvicorn processes serve the same StreamBoost-wrapped Starlette app (an OpenAI-style SSE
stream of ``T`` content chunks, 1 ms apart, coalescing on), one with ``resume=`` and one
without. Each gets ``N`` streams (8 at a time) from an httpx client, then ``N`` more one at a
time for time to first token; ``--rounds`` pairs of processes, off and on interleaved.
Printed: Redis writes per stream (``INFO commandstats`` deltas: XADD, EXPIRE; Redis is shared,
so other clients' commands would count too) against the flushed batches per stream (the
``streamboost_stream_writes`` counter), the server process's CPU seconds per stream
(``/proc/<pid>/stat``) with resume on and off and their ratio (each round, then the median),
and time to first token p50/p99 on and off and the difference: at the client (request sent
-> first content byte) and in the server (the ASGI call -> the first content byte handed to
uvicorn's send, by a wrapper outside StreamBoost, so the resume's own work counts and the
client's scheduling does not). Targets: at most one XADD per flushed batch, at most 1.2x CPU,
under 1 ms of added TTFT at p99. On a shared machine the wall figures are noisy: compare
rounds.
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
    return FirstByte(StreamBoost(app, registry=CollectorRegistry(), otel=False, resume=resume))


class FirstByte:
    """Outside StreamBoost: the ASGI call -> the first content bytes given to the server's send,
    per request (``GET /ttft`` answers them as JSON and forgets them)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.times: list[float] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/ttft":
            body, self.times = orjson.dumps(self.times), []
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": body})
            return
        started = time.perf_counter()
        seen = False

        async def timed(message: Any) -> None:
            nonlocal seen
            if not seen and b"data: {" in message.get("body", b""):
                seen = True
                self.times.append(time.perf_counter() - started)
            await send(message)

        await self.app(scope, receive, timed if scope["type"] == "http" else send)


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


async def get(url: str) -> bytes:
    async with httpx.AsyncClient(timeout=5.0) as http:
        return (await http.get(url)).content


async def writes(base: str) -> float:
    """The server's ``streamboost_stream_writes_total``, summed over routes."""
    text = (await get(base + "/metrics")).decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("streamboost_stream_writes_total")
    )


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
            first: float | None = None
            # Read to the end: a client that left would leave resume's generation running
            # (detached) but cancel the one without, and the CPU compared unequal work.
            async with http.stream("GET", f"{base}/chat?tokens=5") as r:
                async for chunk in r.aiter_raw():
                    if first is None and b"data: {" in chunk:
                        first = time.perf_counter() - started
            assert first is not None, "no content event"
            ttft.append(first)
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
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    load = os.getloadavg()
    prefix = f"sbbench:resume:{uuid.uuid4().hex[:8]}:"
    client: Any = aioredis.Redis.from_url(args.redis)
    rounds: list[dict[str, dict[str, float]]] = []
    try:
        for _ in range(args.rounds):
            results: dict[str, dict[str, float]] = {}
            for mode in ("off", "on"):
                results[mode] = await measure(mode, args, prefix, client)
            rounds.append(results)
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()
    print(f"streams {args.streams} x2 per mode and round ({args.tokens}-token and 5-token "
          f"streams), {args.rounds} rounds, load average before: {load}")  # fmt: skip
    for number, results in enumerate(rounds, 1):
        on, off = results["on"], results["off"]
        print(f"round {number}: Redis per stream, resume on: XADD {on['xadd']:.2f}, "
              f"EXPIRE {on['expire']:.2f}; flushed batches per stream {on['writes']:.2f} "
              f"(XADD per batch {on['xadd'] / on['writes']:.2f}); "
              f"off: XADD {off['xadd']:.2f}")  # fmt: skip
        print(f"  server CPU per stream: off {off['cpu'] * 1e3:.2f} ms, "
              f"on {on['cpu'] * 1e3:.2f} ms, ratio {on['cpu'] / off['cpu']:.2f}x")  # fmt: skip
        for where in ("client", "server"):
            print(f"  TTFT at the {where} p50: off {off[where + '50'] * 1e3:.3f} ms, on "
                  f"{on[where + '50'] * 1e3:.3f} ms; p99: off {off[where + '99'] * 1e3:.3f} ms, "
                  f"on {on[where + '99'] * 1e3:.3f} ms, added "
                  f"{(on[where + '99'] - off[where + '99']) * 1e3:+.3f} ms")  # fmt: skip
    ratios = sorted(r["on"]["cpu"] / r["off"]["cpu"] for r in rounds)
    added = sorted(r["on"]["server99"] - r["off"]["server99"] for r in rounds)
    print(f"median over rounds: CPU ratio {ratios[len(ratios) // 2]:.2f}x "
          f"(min {ratios[0]:.2f}, max {ratios[-1]:.2f}); server TTFT p99 added "
          f"{added[len(added) // 2] * 1e3:+.3f} ms")  # fmt: skip
    print(f"load average after: {os.getloadavg()}")


async def measure(
    mode: str, args: argparse.Namespace, prefix: str, client: Any
) -> dict[str, float]:
    """One server process of ``mode``: warm-up, then the measured streams."""
    proc, base = start(mode, args.redis, prefix)
    try:
        await run(base, 10, args.tokens)  # warm-up
        await get(base + "/ttft")  # forget the warm-up's
        before_cpu, before = cpu_seconds(proc.pid), await commandstats(client)
        before_writes = await writes(base)
        ttft = await run(base, args.streams, args.tokens)
        cpu, after = cpu_seconds(proc.pid) - before_cpu, await commandstats(client)
        batches = await writes(base) - before_writes
        server = orjson.loads(await get(base + "/ttft"))
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
    total = 2 * args.streams  # the concurrent round and the TTFT round
    xadd = after.get("cmdstat_xadd", 0) - before.get("cmdstat_xadd", 0)
    expire = after.get("cmdstat_expire", 0) - before.get("cmdstat_expire", 0)
    server_ttft = server[-args.streams :]  # the one-at-a-time streams
    return {
        "xadd": xadd / total,
        "expire": expire / total,
        "writes": batches / total,
        "cpu": cpu / total,
        "client50": pct(ttft, 0.5),
        "client99": pct(ttft, 0.99),
        "server50": pct(server_ttft, 0.5),
        "server99": pct(server_ttft, 0.99),
    }


if __name__ == "__main__":
    asyncio.run(main())
