"""Apps for the admission tests: streams that count their concurrent entries and hold open.

``/stream`` counts itself in (its peak is what the limit must bound), waits until the test
opens the gate, then streams three SSE events and counts itself out. ``hold_app`` keeps the
counts in this process (uvicorn in a thread); ``tests.admission_apps:redis_app`` keeps them in
Redis, so two uvicorn processes share one count (configured from ``ADM_*`` variables).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.lowlevel
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from streamboost import AdmissionConfig, SharedLimit, StreamBoost
from streamboost._export._spec import ADMISSION_REASONS

EVENTS = 3
_POLL = 0.01
_HOLD_LIMIT = 6000  # polls of the gate (60 s) before a stream gives up holding


class LocalCounts:
    """The counts of one in-process server (read by the test thread)."""

    def __init__(self) -> None:
        self.running = 0
        self.peak = 0
        self.entered: list[str] = []  # request tags in the order they reached the app
        self.bodies: list[bytes] = []
        self.open = False
        self.app: object = None  # the app under test, kept alive for its metrics

    async def enter(self, tag: str) -> None:
        self.running += 1
        self.peak = max(self.peak, self.running)
        self.entered.append(tag)

    async def leave(self) -> None:
        self.running -= 1

    async def is_open(self) -> bool:
        return self.open


_ENTER = """
local n = redis.call('INCR', KEYS[1])
if n > tonumber(redis.call('GET', KEYS[2]) or '0') then redis.call('SET', KEYS[2], n) end
return n
"""


class RedisCounts:
    """The same counts in Redis, shared by every process of one test (keys under ``prefix``)."""

    def __init__(self, url: str, prefix: str) -> None:
        import redis.asyncio as aioredis

        self.client = aioredis.Redis.from_url(url)
        self.prefix = prefix
        self._enter = self.client.register_script(_ENTER)

    async def enter(self, tag: str) -> None:
        await self._enter(keys=[self.prefix + ":running", self.prefix + ":peak"])

    async def leave(self) -> None:
        await self.client.decr(self.prefix + ":running")

    async def is_open(self) -> bool:
        return bool(await self.client.exists(self.prefix + ":open"))


def _routes(counts: Any) -> list[Route]:
    async def stream(request: Request) -> Response:
        body = await request.body()
        tag = request.query_params.get("tag", "")
        await counts.enter(tag)
        if isinstance(counts, LocalCounts):
            counts.bodies.append(body)
        try:
            for _ in range(_HOLD_LIMIT):
                if await counts.is_open():
                    break
                await anyio.sleep(_POLL)
        except BaseException:
            await counts.leave()
            raise

        async def events() -> AsyncIterator[bytes]:
            try:
                for i in range(EVENTS):
                    yield b'data: {"i": %d}\n\n' % i
                    await anyio.lowlevel.checkpoint()
            finally:
                await counts.leave()

        return StreamingResponse(events(), media_type="text/event-stream")

    async def state(request: Request) -> JSONResponse:
        boost: StreamBoost = request.app.state.boost
        admission = boost.admission
        assert admission is not None
        stats = admission.stats
        return JSONResponse(
            {
                "pid": os.getpid(),
                "waiting": stats.waiting,
                "active": stats.active,
                "rejected": {r: stats.rejected(r) for r in ADMISSION_REASONS},
                "abandoned": stats.count("abandoned"),
                "errors": 0 if admission.gate.keeper is None else admission.gate.keeper.errors,
            }
        )

    return [
        Route("/stream", stream, methods=["GET", "POST"]),
        Route("/slow/{n}", stream, methods=["GET"]),
        Route("/state", state),
    ]


def exempt_state(scope: dict[str, Any]) -> bool:
    return bool(scope["path"] == "/state")


def hold_app(
    admission: AdmissionConfig, counts: LocalCounts, registry: CollectorRegistry
) -> StreamBoost:
    inner = Starlette(routes=_routes(counts))
    boost = StreamBoost(inner, admission=admission, registry=registry, otel=False)
    inner.state.boost = boost
    return boost


def _redis_app() -> StreamBoost:
    url, prefix = os.environ["ADM_REDIS_URL"], os.environ["ADM_PREFIX"]
    lease = float(os.environ.get("ADM_LEASE", "10"))
    shared = SharedLimit(
        url=url,
        limit=int(os.environ["ADM_SHARED_LIMIT"]),
        key=prefix + ":sem",
        lease=lease,
        poll_interval=0.02,
        timeout=min(0.5, lease / 4),
    )
    admission = AdmissionConfig(
        limit=int(os.environ.get("ADM_LIMIT", "100")),
        max_queue=int(os.environ.get("ADM_MAX_QUEUE", "100")),
        max_wait=float(os.environ.get("ADM_MAX_WAIT", "60")),
        exempt=exempt_state,
        shared=shared,
    )
    inner = Starlette(routes=_routes(RedisCounts(url, prefix)))
    boost = StreamBoost(inner, admission=admission, registry=CollectorRegistry(), otel=False)
    inner.state.boost = boost
    return boost


def redis_app() -> StreamBoost:
    """uvicorn's factory (``--factory tests.admission_apps:redis_app``)."""
    return _redis_app()
