"""What timing the model costs per upstream chunk: an instrumented httpx client against a
plain one, reading the same SSE stream inside a StreamBoost request (a ``StreamRecord`` set
as the current one, as the middleware does).

    uv run python benchmarks/bench_upstream.py [--quick]

Both clients read from an in-memory transport (``httpx.MockTransport``) that streams N
OpenAI ``chat.completion.chunk`` events, so the figure is the client's own path per chunk,
without sockets. The instrumented client (``instrument_upstream``) reads the first event with
the scanner and every later one through one extra call. The best of interleaved rounds (the
machine is shared and noisy). Prints times per chunk and the difference; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import AsyncIterator

import httpx

from streamboost import instrument_upstream
from streamboost._stream import StreamRecord, current_record

EVENT = (
    b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m",'
    b'"choices":[{"index":0,"delta":{"content":"tok"},"finish_reason":null}]}\n\n'
)


class Events(httpx.AsyncByteStream):
    def __init__(self, n: int) -> None:
        self.n = n

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for _ in range(self.n):
            yield EVENT


def client(n: int, timed: bool) -> httpx.AsyncClient:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=Events(n))

    built = httpx.AsyncClient(transport=httpx.MockTransport(handler), base_url="http://model")
    return instrument_upstream(built) if timed else built


async def read(http: httpx.AsyncClient) -> float:
    token = current_record.set(StreamRecord({"method": "POST"}, time.perf_counter()))
    try:
        started = time.perf_counter()
        async with http.stream("POST", "/v1/chat/completions") as response:
            async for _ in response.aiter_raw():
                pass
        return time.perf_counter() - started
    finally:
        current_record.reset(token)


async def main(quick: bool) -> None:
    n, rounds = (2_000, 20) if quick else (20_000, 60)
    plain, timed = client(n, False), client(n, True)
    best = {"plain": float("inf"), "instrumented": float("inf")}
    for _ in range(rounds):
        best["plain"] = min(best["plain"], await read(plain))
        best["instrumented"] = min(best["instrumented"], await read(timed))
    await plain.aclose()
    await timed.aclose()
    per_chunk = {name: seconds / n * 1e9 for name, seconds in best.items()}
    print(f"{n} chunks per stream, best of {rounds} interleaved rounds")
    for name, ns in per_chunk.items():
        print(f"  {name:13} {ns:7.0f} ns per chunk")
    added = per_chunk["instrumented"] - per_chunk["plain"]
    ratio = per_chunk["instrumented"] / per_chunk["plain"]
    print(f"  added        {added:7.0f} ns per chunk ({ratio:.3f}x)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer chunks and rounds")
    asyncio.run(main(parser.parse_args().quick))
