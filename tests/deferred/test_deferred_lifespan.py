"""Lifespan glue on a real app under real uvicorn; a client disconnect mid-stream."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from streamboost import DeferredWriter, Delta, Entry, defer, delta_buffer
from streamboost._cli._loopback import uvicorn_in_thread
from streamboost._deferred import LifespanWriters


def wait_until(predicate: Any, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def test_writers_start_after_app_startup_and_drain_before_app_shutdown() -> None:
    events: list[str] = []
    written: list[int] = []

    async def sink(entries: list[Entry[int]]) -> None:
        await asyncio.sleep(0.02)  # slow enough that items are pending at shutdown
        written.extend(e.item for e in entries)

    async def side_job(n: int) -> None:
        await asyncio.sleep(0.05)
        written.append(n)

    writer: DeferredWriter[int] = DeferredWriter(
        sink, name="lifespan", max_batch=10, max_delay=0.01, registry=CollectorRegistry()
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        events.append("app startup")
        yield
        events.append(f"app shutdown, written={len(written)}")

    async def endpoint(request: Request) -> PlainTextResponse:
        for n in range(100):
            await writer.put(n)
        defer(side_job, 1000)
        return PlainTextResponse("queued")

    app = LifespanWriters(
        Starlette(routes=[Route("/", endpoint, methods=["POST"])], lifespan=lifespan),
        writers=[writer],
    )
    with uvicorn_in_thread(app) as url:
        assert httpx.post(url + "/", timeout=10).text == "queued"
    assert sorted(written) == [*range(100), 1000]
    assert events == ["app startup", "app shutdown, written=101"]


def test_an_app_without_lifespan_support_still_gets_its_writers() -> None:
    written: list[str] = []

    async def sink(entries: list[Entry[str]]) -> None:
        written.extend(e.item for e in entries)

    writer: DeferredWriter[str] = DeferredWriter(sink, name="bare", registry=CollectorRegistry())

    async def bare(scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http", "this app knows nothing about lifespan"
        await writer.put(scope["path"])
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    with uvicorn_in_thread(LifespanWriters(bare, writers=[writer])) as url:
        assert httpx.get(url + "/hello", timeout=10).status_code == 204
    assert written == ["/hello"]


def test_client_disconnect_mid_stream_persists_every_delta() -> None:
    appended: list[str] = []
    deltas: list[Delta] = []

    async def save(delta: Delta) -> None:
        await asyncio.sleep(0.005)
        deltas.append(delta)

    async def chat(request: Request) -> StreamingResponse:
        async def tokens() -> AsyncIterator[bytes]:
            async with delta_buffer(save, interval=0.02, min_chars=64) as buffer:
                for n in range(100_000):
                    token = f"tok{n} "
                    buffer.append(token)
                    appended.append(token)
                    yield f"data: {token}\n\n".encode()
                    await asyncio.sleep(0.001)

        return StreamingResponse(tokens(), media_type="text/event-stream")

    app = Starlette(routes=[Route("/chat", chat)])
    with uvicorn_in_thread(app) as url:
        with httpx.Client(timeout=10) as client, client.stream("GET", url + "/chat") as response:
            for received, _ in enumerate(response.iter_raw(), start=1):
                if received >= 20:
                    break  # the client goes away mid-stream
        assert wait_until(lambda: bool(deltas) and deltas[-1].final), "no final write"
    text = ""
    for delta in deltas:
        assert delta.offset == len(text)
        text += delta.text
    assert 20 <= len(appended) < 100_000
    assert text == "".join(appended)


async def test_a_writer_that_cannot_start_fails_the_startup() -> None:
    async def sink(entries: list[Entry[int]]) -> None:
        pass

    # Nothing listens on port 1: the consumer group cannot be created.
    broken: DeferredWriter[int] = DeferredWriter(
        sink, name="broken", durable="redis://127.0.0.1:1/0", registry=CollectorRegistry()
    )
    app_events: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            app_events.append(message["type"])
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return

    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await inbox.put({"type": "lifespan.startup"})
    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(message)
        if message["type"] == "lifespan.startup.failed":
            await inbox.put({"type": "lifespan.shutdown"})

    lifespan = LifespanWriters(app, writers=[broken], drain_timeout=1)
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    await asyncio.wait_for(lifespan(scope, inbox.get, send), 10)
    assert [m["type"] for m in sent] == ["lifespan.startup.failed", "lifespan.shutdown.complete"]
    assert "Connect" in sent[0]["message"] or "connect" in sent[0]["message"]
    assert app_events == ["lifespan.startup", "lifespan.shutdown"]


def test_sync_endpoints_in_threads_can_defer_from_the_first_request() -> None:
    # Starlette runs sync endpoints in a thread without an event loop; the lifespan glue bound
    # the defer() runner to the server's loop at startup.
    done: list[str] = []

    async def record(value: str) -> None:
        done.append(value)

    def endpoint(request: Request) -> PlainTextResponse:
        defer(record, "from a thread")
        return PlainTextResponse("ok")

    app = LifespanWriters(Starlette(routes=[Route("/", endpoint)]))
    with uvicorn_in_thread(app) as url:
        assert httpx.get(url + "/", timeout=10).text == "ok"
    assert done == ["from a thread"]


def test_defer_config_from_env(monkeypatch: Any) -> None:
    from streamboost import DeferConfig

    monkeypatch.setenv("STREAMBOOST_DEFER_MAX_CONCURRENCY", "7")
    monkeypatch.setenv("STREAMBOOST_DEFER_RETRIES", "0")
    config = DeferConfig.from_env()
    assert (config.max_concurrency, config.retry.retries, config.max_pending) == (7, 0, 100_000)
    monkeypatch.setenv("STREAMBOOST_DEFER_MAX_PENDING", "lots")
    with pytest.raises(ValueError, match="STREAMBOOST_DEFER_MAX_PENDING='lots' must be an integer"):
        DeferConfig.from_env()


def test_fastapi_dependencies_defer_and_put_under_streamboost() -> None:
    # FastAPI runs sync dependencies in a thread pool and async ones on the loop; both may
    # schedule writes, and StreamBoost drains them at shutdown.
    from fastapi import Depends, FastAPI

    from streamboost import StreamBoost

    audited: list[str] = []
    written: list[str] = []

    async def audit(user: str) -> None:
        audited.append(user)

    async def sink(entries: list[Entry[str]]) -> None:
        written.extend(e.item for e in entries)

    writer: DeferredWriter[str] = DeferredWriter(
        sink, name="fastapi_deps", max_delay=60.0, registry=CollectorRegistry()
    )

    def audited_user(user: str) -> str:  # sync: runs in a worker thread
        defer(audit, user)
        return user

    async def message_log() -> DeferredWriter[str]:
        return writer

    api = FastAPI()

    @api.post("/messages")
    async def post_message(
        text: str,
        user: str = Depends(audited_user),
        log: DeferredWriter[str] = Depends(message_log),  # noqa: B008
    ) -> dict[str, str]:
        await log.put(f"{user}: {text}")
        return {"queued": text}

    app = StreamBoost(api, writers=[writer], registry=CollectorRegistry())
    with uvicorn_in_thread(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        for n in range(3):
            response = client.post("/messages", params={"user": "ann", "text": str(n)})
            assert response.json() == {"queued": str(n)}
    assert audited == ["ann"] * 3
    assert written == ["ann: 0", "ann: 1", "ann: 2"]  # max_delay=60: written by the drain
