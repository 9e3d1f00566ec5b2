"""A relay of an upstream stream, as LLM proxies write one, for the end-to-end relay tests.

A Starlette app whose one route streams what it reads from the upstream, piece by piece as
httpx gives it (``async for piece in response.aiter_raw(): yield piece``), wrapped in
StreamBoost with the test's own registry and observers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from tests.coalesce_apps import Records

from streamboost import CoalesceConfig, StreamBoost


def relay_app(
    upstream_url: str,
    records: Records,
    *,
    coalesce: bool | CoalesceConfig,
    path: str = "/relay",
    methods: tuple[str, ...] = ("GET",),
) -> StreamBoost:
    async def relay(request: Request) -> Response:
        client = httpx.AsyncClient(timeout=10)
        response = await client.send(client.build_request("GET", upstream_url), stream=True)

        async def relayed() -> AsyncIterator[bytes]:
            try:
                async for piece in response.aiter_raw():
                    yield piece
            finally:
                await response.aclose()
                await client.aclose()

        return StreamingResponse(relayed(), media_type="text/event-stream")

    app = Starlette(routes=[Route(path, relay, methods=list(methods))])
    return StreamBoost(
        app, coalesce=coalesce, registry=CollectorRegistry(), observers=[records], otel=False
    )
