"""``StreamBoost(app, writers=[...])`` ties writers and defer() to the app's lifespan."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from streamboost import DeferredWriter, Entry, StreamBoost, defer
from streamboost._cli._loopback import uvicorn_in_thread


def test_writers_start_with_the_app_and_drain_at_shutdown() -> None:
    written: list[int] = []
    deferred: list[int] = []

    async def sink(entries: list[Entry[int]]) -> None:
        written.extend(entry.item for entry in entries)

    writer: DeferredWriter[int] = DeferredWriter(
        sink, name="lifespan-test", max_batch=1000, max_delay=60.0, registry=CollectorRegistry()
    )

    async def remember(n: int) -> None:
        deferred.append(n)

    async def endpoint(request: Request) -> PlainTextResponse:
        n = int(request.query_params["n"])
        await writer.put(n)  # accepted at once; max_delay=60 keeps it buffered until shutdown
        defer(remember, n)
        return PlainTextResponse("ok")

    app = StreamBoost(Starlette(routes=[Route("/", endpoint)]), writers=[writer])
    with uvicorn_in_thread(app) as url, httpx.Client(base_url=url) as client:
        for n in range(50):
            assert client.get("/", params={"n": n}).text == "ok"
        assert written == []  # nothing flushed yet: the batch waits for its delay
    # uvicorn's shutdown ran the lifespan: the writer and the defer() work were drained.
    assert sorted(written) == list(range(50))
    assert sorted(deferred) == list(range(50))
    assert not writer.running


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"drain_timeout": 0}, "drain_timeout=0 must be > 0 seconds"),
        ({"writers": [object()]}, "each must be a DeferredWriter"),
        ({"app": StreamBoost(Starlette())}, "is already wrapped in StreamBoost"),
    ],
)
def test_bad_lifespan_arguments_name_the_value_and_the_fix(
    kwargs: dict[str, Any], message: str
) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        return None

    kwargs.setdefault("app", app)
    with pytest.raises((TypeError, ValueError), match=message):
        StreamBoost(**kwargs)


async def _failing_startup(scope: Any, receive: Any, send: Any) -> None:
    """An app (or a middleware) that speaks lifespan and fails at startup without replying."""
    assert scope["type"] == "lifespan"
    message = await receive()
    assert message["type"] == "lifespan.startup"
    raise RuntimeError("the database is down")


async def _starts(app: Any) -> bool:
    """Whether real uvicorn with ``--lifespan on`` starts ``app`` (it is stopped again)."""
    import uvicorn
    from tests.needs import free_port

    config = uvicorn.Config(
        app, host="127.0.0.1", port=free_port(), lifespan="on", log_level="critical"
    )
    server = uvicorn.Server(config)

    async def stop_once_started() -> None:
        for _ in range(500):  # bounded: the startup either completes or fails quickly
            if server.started or server.should_exit:
                break
            await asyncio.sleep(0.01)
        server.should_exit = True

    stopper = asyncio.create_task(stop_once_started())
    try:
        await server.serve()
    except SystemExit:  # uvicorn's answer to a failed startup
        return False
    finally:
        stopper.cancel()  # after a failed startup it would poll out its whole bound (5 s)
        with contextlib.suppress(asyncio.CancelledError):
            await stopper
    return server.started


@pytest.mark.parametrize("writers", [False, True])
async def test_an_app_whose_lifespan_startup_fails_keeps_uvicorn_from_starting(
    writers: bool,
) -> None:
    assert not await _starts(_failing_startup)  # bare: uvicorn refuses to start

    async def sink(entries: list[Entry[int]]) -> None:
        return None

    kept = (
        [DeferredWriter(sink, name="lifespan-fail", registry=CollectorRegistry())]
        if writers
        else []
    )
    assert not await _starts(StreamBoost(_failing_startup, metrics=False, writers=kept))


async def test_an_app_without_lifespan_still_starts_under_lifespan_on() -> None:
    async def http_only(scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "http"  # raises on the lifespan scope before receiving

    assert await _starts(StreamBoost(http_only, metrics=False))
