"""A plain Starlette streaming app that knows nothing of streamboost (``streamboost serve``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route


async def stream(request: Request) -> StreamingResponse:
    async def events() -> AsyncIterator[bytes]:
        for n in range(20):
            yield f"data: token {n}\n\n".encode()
        yield b"data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


app = Starlette(routes=[Route("/stream", stream)])
