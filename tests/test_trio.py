"""StreamBoost under trio (hypercorn's trio worker), with a real httpx client.

Timing, accounting and pass-through work; coalescing is skipped (streams pass through, a
warning says so once); writers make the startup fail and defer() raises, both saying why.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from tests.coalesce_apps import EVENTS, Records
from tests.needs import wait_until_listening

from streamboost import DeferredWriter, Entry, StreamBoost, defer

trio = pytest.importorskip("trio")


@contextmanager
def hypercorn_trio(app: Any) -> Iterator[str]:
    from hypercorn.config import Config
    from hypercorn.trio import serve

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.listen(128)
    config = Config()
    config.bind = [f"fd://{sock.detach()}"]  # hypercorn owns and closes the socket
    config.loglevel = "WARNING"
    state: dict[str, Any] = {}
    ready = threading.Event()

    async def main() -> None:
        stop = trio.Event()
        state["stop"], state["token"] = stop, trio.lowlevel.current_trio_token()
        ready.set()
        await serve(app, config, shutdown_trigger=stop.wait)

    def run() -> None:
        try:
            trio.run(main)
        except BaseException as exc:  # the test reads it: a failed startup
            state["error"] = exc
        finally:
            ready.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        ready.wait(10)
        # Until it listens, or its startup failed (then it closed the port: no need to wait).
        starting = lambda: "error" not in state and thread.is_alive()  # noqa: E731
        wait_until_listening(port, "hypercorn", waiting=starting)
        yield f"http://127.0.0.1:{port}"
    finally:
        if "token" in state and thread.is_alive():
            # RunFinishedError: the server already stopped (its startup failed).
            with contextlib.suppress(trio.RunFinishedError):
                trio.from_thread.run_sync(state["stop"].set, trio_token=state["token"])
        thread.join(10)
        assert not thread.is_alive()
        if "error" in state:
            raise state["error"]


def trio_app(records: Records) -> Any:
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse, StreamingResponse
    from starlette.routing import Route

    async def stream(request: Any) -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            for event in EVENTS:
                await trio.lowlevel.checkpoint()
                yield event

        return StreamingResponse(body(), media_type="text/event-stream")

    async def later() -> None:
        return None

    async def deferring(request: Any) -> PlainTextResponse:
        try:
            defer(later)
        except RuntimeError as exc:
            return PlainTextResponse(str(exc))
        return PlainTextResponse("deferred")

    routes = [Route("/stream", stream), Route("/defer", deferring)]
    return StreamBoost(Starlette(routes=routes), observers=[records], otel=False, metrics=False)


def test_streams_pass_through_timed_under_hypercorns_trio_worker() -> None:
    records = Records()
    with hypercorn_trio(trio_app(records)) as url, httpx.Client(base_url=url, timeout=10) as client:
        with client.stream("GET", "/stream") as response:
            assert response.status_code == 200
            assert response.read() == b"".join(EVENTS)
        refused = client.get("/defer").text
    assert "defer() needs an asyncio event loop" in refused
    record = records.ended[0]
    assert record.outcome == "completed"
    assert record.events == len(EVENTS)
    assert record.first_token_at is not None and record.headers_at is not None
    assert record.writes == len(EVENTS) + 1  # uncoalesced: each chunk, then the last message


def test_writers_under_trio_fail_the_startup_with_the_reason() -> None:
    async def sink(entries: list[Entry[int]]) -> None:
        return None

    from prometheus_client import CollectorRegistry

    writer = DeferredWriter(sink, name="trio-writer", registry=CollectorRegistry())
    records = Records()
    app = trio_app(records)
    app = StreamBoost(app.app, writers=[writer], metrics=False, otel=False)
    with pytest.raises(BaseException) as failed, hypercorn_trio(app):
        pass
    assert "need an asyncio event loop" in repr(failed.value)
