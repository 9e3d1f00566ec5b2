"""phase() and gather_phases(): timing into the current request, timeouts, fallbacks, errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route
from tests.coalesce_apps import Records, run_app
from tests.metrics_apps import SSE, asgi_scope, token, value

from streamboost import StreamBoost, gather_phases, phase

ROUTE = "/chat/{id}"


async def serve(prestream: Callable[[], Awaitable[Any]]) -> tuple[CollectorRegistry, Records]:
    """Run one request whose endpoint awaits ``prestream()`` before it streams."""
    registry = CollectorRegistry()
    records = Records()

    async def endpoint(request: Request) -> StreamingResponse:
        await prestream()

        async def body() -> AsyncIterator[bytes]:
            yield token(0)

        return StreamingResponse(body(), media_type=SSE)

    app = StreamBoost(
        Starlette(routes=[Route(ROUTE, endpoint)]),
        registry=registry,
        observers=[records],
        otel=False,
    )
    await run_app(app, scope=asgi_scope("/chat/1"))
    return registry, records


def phase_count(registry: CollectorRegistry, name: str) -> float:
    return value(registry, "streamboost_phase_duration_seconds_count", route=ROUTE, phase=name)


def fallbacks(registry: CollectorRegistry, name: str, reason: str) -> float:
    labels = {"route": ROUTE, "phase": name, "reason": reason}
    return value(registry, "streamboost_phase_fallbacks_total", **labels)


async def test_phase_as_async_and_sync_context_manager_and_decorator() -> None:
    @phase("profile")
    async def load_profile() -> str:
        await asyncio.sleep(0.01)
        return "ada"

    async def prestream() -> None:
        async with phase("rag"):
            await asyncio.sleep(0.01)
        with phase("prompt"):
            pass
        assert await load_profile() == "ada"

    registry, records = await serve(prestream)
    (record,) = records.ended
    assert [t.name for t in record.phases or ()] == ["rag", "prompt", "profile"]
    for name in ("rag", "prompt", "profile"):
        assert phase_count(registry, name) == 1
    rag = value(registry, "streamboost_phase_duration_seconds_sum", route=ROUTE, phase="rag")
    assert rag >= 0.009
    assert record.first_token_at is not None
    assert all(t.ended_at <= record.first_token_at for t in record.phases or ())


async def test_phase_records_also_when_the_block_raises() -> None:
    async def prestream() -> None:
        with pytest.raises(KeyError):
            async with phase("lookup"):
                raise KeyError("missing")

    registry, _ = await serve(prestream)
    assert phase_count(registry, "lookup") == 1


async def test_gather_phases_runs_branches_concurrently_and_keeps_keyword_order() -> None:
    a_started = asyncio.Event()
    b_started = asyncio.Event()

    async def branch(mine: asyncio.Event, other: asyncio.Event, result: str) -> str:
        mine.set()
        await other.wait()  # deadlocks unless both branches run at the same time
        return result

    results: list[tuple[Any, ...]] = []

    async def prestream() -> None:
        results.append(
            await asyncio.wait_for(
                gather_phases(
                    profile=branch(a_started, b_started, "p"),
                    history=branch(b_started, a_started, "h"),
                ),
                timeout=10,
            )
        )

    registry, records = await serve(prestream)
    assert results == [("p", "h")]
    assert sorted(t.name for t in records.ended[0].phases or ()) == ["history", "profile"]
    assert phase_count(registry, "profile") == phase_count(registry, "history") == 1


async def test_timeout_and_error_use_the_fallback_and_are_counted() -> None:
    async def never() -> list[str]:
        await asyncio.Event().wait()
        return ["never"]

    async def broken() -> list[str]:
        raise ConnectionError("vector store down")

    async def own_timeout() -> str:
        raise TimeoutError("the client library's own timeout")

    results: list[tuple[Any, ...]] = []

    async def prestream() -> None:
        results.append(
            await gather_phases(
                rag=never(),
                history=broken(),
                profile=own_timeout(),
                timeouts={"rag": 0.05},
                fallbacks={"rag": [], "history": [], "profile": None},
            )
        )

    registry, records = await serve(prestream)
    assert results == [([], [], None)]
    assert fallbacks(registry, "rag", "timeout") == 1
    assert fallbacks(registry, "history", "error") == 1
    assert fallbacks(registry, "profile", "error") == 1  # not our deadline
    assert fallbacks(registry, "rag", "error") == 0
    reasons = {t.name: t.fallback for t in records.ended[0].phases or ()}
    assert reasons == {"rag": "timeout", "history": "error", "profile": "error"}


async def test_without_fallback_the_error_propagates_and_the_others_are_cancelled() -> None:
    cancelled: list[str] = []
    slow_started = asyncio.Event()

    async def slow() -> str:
        slow_started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append("slow")
            raise
        return "never"

    async def failing() -> str:
        await slow_started.wait()
        raise LookupError("no such session")

    with pytest.raises(LookupError, match="no such session"):
        await gather_phases(history=failing(), profile=slow())
    assert cancelled == ["slow"]  # cancelled and finished before gather_phases returned
    assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []


async def test_cancelling_gather_phases_cancels_every_branch() -> None:
    finished: list[str] = []

    async def wait_forever(name: str) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            finished.append(name)

    task = asyncio.ensure_future(gather_phases(a=wait_forever("a"), b=wait_forever("b")))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sorted(finished) == ["a", "b"]


async def test_outside_a_request_phases_just_run() -> None:
    async def one() -> int:
        return 1

    assert await gather_phases(x=one()) == (1,)
    async with phase("free"):
        pass


async def test_bad_arguments_name_the_fix() -> None:
    async def one() -> int:
        return 1

    coroutine = one()
    with pytest.raises(ValueError, match=r"timeouts name \['rag'\] with no awaitable"):
        await gather_phases(profile=coroutine, timeouts={"rag": 1.0})
    with pytest.raises(ValueError, match=r"timeouts\['profile'\]=0"):
        await gather_phases(profile=one(), timeouts={"profile": 0})
    with pytest.raises(ValueError, match="non-empty string"):
        phase("")
    with pytest.raises(TypeError, match="decorates async functions"):
        phase("x")(lambda: 1)  # type: ignore[arg-type]


def test_example_app_boosted_mode_times_its_loads_as_phases() -> None:
    from examples.chat.app import create_app
    from examples.chat.settings import ChatSettings, Latencies

    from streamboost._cli._loopback import uvicorn_in_thread

    settings = ChatSettings(
        mode="boosted",
        model_ttft=0.01,
        tokens_per_second=1000,
        max_tokens=3,
        latencies=Latencies(0.001, 0.001, 0.001, 0.001, 0.001),
    )
    registry = CollectorRegistry()
    app = create_app(settings, registry=registry)  # boosted mode wraps itself in StreamBoost
    with uvicorn_in_thread(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        response = client.post("/chat/stream", json={"user_id": "a", "session_id": "s"})
        assert response.text.endswith("data: [DONE]\n\n")
    for name in ("profile", "history", "rag"):
        labels = {"route": "/chat/stream", "phase": name}
        assert value(registry, "streamboost_phase_duration_seconds_count", **labels) == 1
