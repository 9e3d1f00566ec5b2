"""A streaming app for the multi-worker tests: a cache call and a deferred job per stream."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from streamboost import Cache, StreamBoost, cached, defer

cache = Cache("memory://", namespace="multiworker")


@cached(ttl=600, cache=cache)
async def lookup(n: int) -> str:
    return f"value {n}"


async def record(n: int) -> None:
    await asyncio.sleep(0)


async def stream(request: Request) -> StreamingResponse:
    value = await lookup(int(request.query_params.get("n", "0")))  # one cache call
    defer(record, 1)

    async def events() -> AsyncIterator[bytes]:
        for n in range(3):
            yield f"data: {value} {n}\n\n".encode()
        yield b"data: [DONE]\n\n"

    headers = {"x-worker-pid": str(os.getpid())}
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)


async def slow(request: Request) -> StreamingResponse:
    async def events() -> AsyncIterator[bytes]:
        for n in range(600):  # held open by the test, closed by it (bounded: 60 s)
            yield f"data: {n}\n\n".encode()
            await asyncio.sleep(0.1)

    headers = {"x-worker-pid": str(os.getpid())}
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)


app = StreamBoost(Starlette(routes=[Route("/stream", stream), Route("/slow", slow)]))
