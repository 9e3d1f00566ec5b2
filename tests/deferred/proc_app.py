"""A tiny app for the deferred-write process tests (run by uvicorn in a subprocess).

Run as ``tests.deferred.proc_app:app``. Configured by environment: SB_DSN, SB_TABLE,
SB_MODE (memory | durable), SB_REDIS, SB_STREAM, SB_SINK_DELAY (seconds per batch),
SB_CLAIM_IDLE, SB_DEAD_LETTER.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from streamboost import DeferredWriter, Entry, defer
from streamboost._deferred import LifespanWriters

DSN = os.environ["SB_DSN"]
TABLE = os.environ["SB_TABLE"]
DURABLE = os.environ.get("SB_MODE", "memory") == "durable"
SINK_DELAY = float(os.environ.get("SB_SINK_DELAY", "0"))
pool: dict[str, Any] = {}


async def insert_rows(keys: list[str], numbers: list[int]) -> None:
    # ON CONFLICT: durable mode is at-least-once; the key makes the insert an upsert.
    conflict = "ON CONFLICT (key) DO NOTHING" if DURABLE else ""
    await pool["pg"].execute(
        f"INSERT INTO {TABLE} (key, n) SELECT * FROM unnest($1::text[], $2::int[]) {conflict}",
        keys,
        numbers,
    )


async def sink(entries: list[Entry[int]]) -> None:
    if SINK_DELAY:
        await asyncio.sleep(SINK_DELAY)
    await insert_rows([e.key for e in entries], [e.item for e in entries])


writer: DeferredWriter[int] = DeferredWriter(
    sink,
    name="sbtest",
    max_batch=500,
    max_delay=0.05,
    durable=os.environ.get("SB_REDIS") if DURABLE else None,
    stream=os.environ.get("SB_STREAM"),
    claim_idle=float(os.environ.get("SB_CLAIM_IDLE", "60")),
    dead_letter=os.environ.get("SB_DEAD_LETTER"),
)


async def put(request: Request) -> JSONResponse:
    start, count = int(request.query_params["start"]), int(request.query_params["n"])
    for n in range(start, start + count):
        await writer.put(n)
    return JSONResponse({"accepted": count})


async def deferred(request: Request) -> JSONResponse:
    start, count = int(request.query_params["start"]), int(request.query_params["n"])
    for n in range(start, start + count):
        defer(slow_insert, n)
    return JSONResponse({"deferred": count})


async def slow_insert(n: int) -> None:
    await asyncio.sleep(SINK_DELAY)
    await insert_rows([f"defer-{n}"], [n])


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    pool["pg"] = await asyncpg.create_pool(DSN, min_size=1, max_size=4)
    yield
    # Writers drain before this runs: the pool is still open for them.
    await pool.pop("pg").close()


app = LifespanWriters(
    Starlette(
        routes=[Route("/put", put, methods=["POST"]), Route("/defer", deferred, methods=["POST"])],
        lifespan=lifespan,
    ),
    writers=[writer],
    drain_timeout=30,
)
