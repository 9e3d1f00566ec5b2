"""A request leaves no reference cycle behind: refcounting frees it when it ends.

The kernel's fields name the stream (its general send, its owner, the coalescer) and the
coalescer and its flusher name each other. Left in place, every request would wait for a GC
pass that walks all of it, and pay for it: gen-0 passes come sooner with each request's
objects still alive (issue 13, the cost per request). Each test runs one request with the
collector off and ``DEBUG_SAVEALL``, so whatever only a GC pass could free shows up in
``gc.garbage``, then looks there for streamboost's objects.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from tests.coalesce_apps import openai, run_app, sse, stream_app

from streamboost import CoalesceConfig, StreamBoost

_STEPS = [(0.0, openai("Hel")), (0.0, openai("lo")), (0.01, openai("!")), (0.0, sse("[DONE]"))]


@pytest.fixture
def no_collector() -> Iterator[None]:
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        yield
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        if was_enabled:
            gc.enable()


def _left_in_cycles() -> list[str]:
    """The names of streamboost's types among what only a GC pass can free."""
    gc.collect()
    names = {
        f"{type(obj).__module__}.{type(obj).__qualname__}"
        for obj in gc.garbage
        if type(obj).__module__.startswith("streamboost")
    }
    return sorted(names)


def _boosted(app: Any, **options: Any) -> StreamBoost:
    return StreamBoost(app, registry=CollectorRegistry(), otel=False, **options)


CONFIGS = {
    "direct": {"coalesce": False},
    "coalesced": {"coalesce": CoalesceConfig(window=0.005)},
    "keepalive": {"coalesce": CoalesceConfig(window=0.005, keepalive=5.0)},
}


@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
async def test_a_streamed_request_is_freed_by_refcounting(
    config: dict[str, Any], no_collector: None
) -> None:
    app = _boosted(stream_app(_STEPS), **config)
    await run_app(app)  # one first, so caches filled once (routes, series) are not counted
    gc.collect()
    gc.garbage.clear()
    recorded = await run_app(app)
    assert b"".join(m.get("body", b"") for m in recorded.messages).count(b"data:") == 4
    del recorded
    assert _left_in_cycles() == []


async def test_a_request_without_a_response_start_is_freed_too(no_collector: None) -> None:
    async def silent(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()  # returns without a response: the server answers 500

    app = _boosted(silent, coalesce=False)
    await run_app(app)
    gc.collect()
    gc.garbage.clear()
    await run_app(app)
    assert _left_in_cycles() == []


async def test_a_message_after_the_request_ended_goes_to_the_server() -> None:
    """The cut kernel sends a late message as it is; the server decides (uvicorn refuses)."""
    kept: list[Any] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        kept.append(send)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    recorded = await run_app(_boosted(app, coalesce=CoalesceConfig(window=0.005)))
    await kept[0]({"type": "http.response.body", "body": b"late"})
    await asyncio.sleep(0)
    bodies = [m.get("body") for m in recorded.messages if m["type"] == "http.response.body"]
    assert bodies == [b"ok", b"late"]
