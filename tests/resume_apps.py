"""Apps for the resumable-stream tests: a deterministic SSE stream under StreamBoost(resume=).

``make_app()`` (uvicorn ``--factory``) reads ``RESUME_REDIS_URL``, ``RESUME_PREFIX`` and
``RESUME_DETACH``; the owner is the ``x-user`` header (or the ``user`` query parameter, for
the browser's EventSource, which sends no custom headers).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs

import orjson
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, StreamingResponse
from starlette.routing import Route

from streamboost import CoalesceConfig, ResumeConfig, StreamBoost


def owner(scope: dict[str, Any]) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"x-user":
            return str(value.decode())
    users = parse_qs(scope.get("query_string", b"").decode()).get("user")
    return users[0] if users else None


def event(n: int, i: int) -> bytes:
    return b"data: " + orjson.dumps({"stream": n, "i": i, "text": f"tok{i} "}) + b"\n\n"


def expected(n: int, count: int) -> bytes:
    """The uninterrupted body without its id lines."""
    return b"".join(event(n, i) for i in range(count)) + b"data: [DONE]\n\n"


async def stream(request: Request) -> StreamingResponse:
    n = int(request.query_params.get("n", "0"))
    count = int(request.query_params.get("count", "40"))
    delay = float(request.query_params.get("delay", "0.004"))

    retry = request.query_params.get("retry")

    async def body() -> AsyncIterator[bytes]:
        if retry:
            yield b"retry: %d\n\n" % int(retry)  # the browser reconnects after this many ms
        yield b": a comment, never stamped\n\n"
        for i in range(count):
            yield event(n, i)
            if i == 3:
                yield b"event: ping\ndata: {}\n\n"
            await asyncio.sleep(delay)
        yield b"data: [DONE]\n\n"

    return StreamingResponse(body(), media_type="text/event-stream")


async def page(request: Request) -> PlainTextResponse:
    return PlainTextResponse(PAGE, media_type="text/html")


PAGE = """<!doctype html><html><body><script>
window.got = []; window.errors = 0; window.finished = false;
const es = new EventSource('/stream?user=alice&count=60&delay=0.01&n=7&retry=100');
es.onmessage = (e) => {
  if (e.data === '[DONE]') { window.finished = true; es.close(); return; }
  window.got.push(e.data);
};
es.onerror = () => { window.errors += 1; };
</script></body></html>"""


def build(redis_url: str, prefix: str, detach: float = 10.0) -> StreamBoost:
    app = Starlette(routes=[Route("/stream", stream), Route("/page", page)])
    return StreamBoost(
        app,
        coalesce=CoalesceConfig(window=0.02),
        registry=CollectorRegistry(),
        otel=False,
        resume=ResumeConfig(
            redis_url=redis_url,
            owner=owner,
            paths=("/stream",),
            key_prefix=prefix,
            detach_timeout=detach,
            ttl=60.0,
            tail_timeout=10.0,
        ),
    )


def make_app() -> StreamBoost:
    return build(
        os.environ["RESUME_REDIS_URL"],
        os.environ["RESUME_PREFIX"],
        float(os.environ.get("RESUME_DETACH", "10")),
    )
