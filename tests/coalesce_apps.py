"""Small ASGI apps and an in-process recorder for the coalescing and middleware tests.

granian needs an import string: it serves ``tests.coalesce_apps:granian_app``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from streamboost import CoalesceConfig, StreamBoost
from streamboost._stream import HTTPStream, StreamRecord

Message = dict[str, Any]
Step = tuple[float, bytes]  # (seconds to sleep first, body chunk)

SSE = b"text/event-stream"


def sse(data: str, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {data}\n\n".encode()


def openai(
    content: str | None = None, *, role: str | None = None, finish: str | None = None
) -> bytes:
    delta: dict[str, str] = {}
    if role is not None:
        delta["role"] = role
    if content is not None:
        delta["content"] = content
    chunk = {
        "id": "c1",
        "object": "chat.completion.chunk",
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


def stream_app(
    steps: Sequence[Step],
    *,
    content_type: bytes = SSE,
    headers: Sequence[tuple[bytes, bytes]] = (),
    after: Callable[[], Awaitable[None]] | None = None,
) -> Any:
    """An app streaming ``steps`` then an empty last body; ``after`` runs after the body."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        start_headers = [(b"content-type", content_type), *headers]
        await send({"type": "http.response.start", "status": 200, "headers": start_headers})
        for delay, chunk in steps:
            if delay:
                await asyncio.sleep(delay)
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        if after is not None:
            await after()

    return app


class Records:
    """An observer keeping every record it is handed."""

    def __init__(self) -> None:
        self.started: list[StreamRecord] = []
        self.ended: list[StreamRecord] = []

    def stream_started(self, record: StreamRecord) -> None:
        self.started.append(record)

    def stream_ended(self, record: StreamRecord) -> None:
        self.ended.append(record)


@dataclass
class Recorded:
    """Every ASGI message the wrapped app sent to the (fake) server, with loop times."""

    messages: list[Message] = field(default_factory=list)
    times: list[float] = field(default_factory=list)

    @property
    def bodies(self) -> list[bytes]:
        return [m["body"] for m in self.messages if m["type"] == "http.response.body"]

    @property
    def body(self) -> bytes:
        return b"".join(self.bodies)


async def run_app(
    app: Any,
    *,
    scope: dict[str, Any] | None = None,
    send_gate: Callable[[Message], Awaitable[None]] | None = None,
    disconnect: asyncio.Event | None = None,
    recorded: Recorded | None = None,
) -> Recorded:
    """Call ``app`` like a server: record each message; ``send_gate`` may delay or fail sends."""
    recorded = recorded if recorded is not None else Recorded()
    loop = asyncio.get_running_loop()
    request_sent = False
    gone = disconnect or asyncio.Event()

    async def receive() -> Message:
        nonlocal request_sent
        if not request_sent:
            request_sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        if send_gate is not None:
            await send_gate(message)
        recorded.messages.append(message)
        recorded.times.append(loop.time())

    base = {"type": "http", "method": "GET", "path": "/", "headers": [], "asgi": {"version": "3.0"}}
    await app(scope or base, receive, send)
    return recorded


EVENTS = [sse("first")] + [sse(f"token {i}") for i in range(60)] + [sse("{}", event="done")]


def server_app(records: Records, produced: list[int] | None = None, **config: Any) -> StreamBoost:
    """A Starlette app for real servers, wrapped in StreamBoost (window 200 ms by default).

    The window is far longer than the ~60 ms a stream takes, so batches end by the count,
    critical and end-of-body rules: on a loaded machine a 1 ms sleep can last longer than a
    short window, and "an event after an idle window goes out at once" would then make the
    number of writes depend on the machine's load.

    ``/stream``: ``EVENTS`` over ~60 ms; ``/endless``: events until the client leaves;
    ``/big``: 32 KiB events until the client leaves; ``/tasks``: asyncio tasks alive;
    ``/stats``: the last ended record (for servers in another process).
    """
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, StreamingResponse
    from starlette.routing import Route

    async def finite(request: Any) -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            for index, event in enumerate(EVENTS):
                if 0 < index < len(EVENTS) - 1:
                    await asyncio.sleep(0.001)
                yield event

        return StreamingResponse(body(), media_type="text/event-stream")

    async def endless(request: Any) -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            for i in range(1_000_000):
                if produced is not None:
                    produced.append(i)
                yield sse(f"token {i}")
                await asyncio.sleep(0.001)

        return StreamingResponse(body(), media_type="text/event-stream")

    async def big(request: Any) -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            for i in range(100_000):
                yield sse(f"{i:08d}" + "x" * 32768)
                await asyncio.sleep(0)

        return StreamingResponse(body(), media_type="text/event-stream")

    async def tasks(request: Any) -> JSONResponse:
        return JSONResponse({"tasks": len(asyncio.all_tasks())})

    async def stats(request: Any) -> JSONResponse:
        last = next(r for r in reversed(records.ended) if r.scope["path"] != "/stats")
        return JSONResponse({"writes": last.writes, "events": last.events, "outcome": last.outcome})

    routes = [
        Route("/stream", finite),
        Route("/endless", endless),
        Route("/big", big),
        Route("/tasks", tasks),
        Route("/stats", stats),
    ]
    config.setdefault("window", 0.2)
    return StreamBoost(
        Starlette(routes=routes), coalesce=CoalesceConfig(**config), observers=[records]
    )


granian_app = server_app(Records())


DRIVEN_SCOPE = {"type": "http", "method": "GET", "path": "/", "headers": [], "query_string": b""}


async def _not_called(scope: Any, receive: Any, send: Any) -> None:
    raise AssertionError("not called: the test drives HTTPStream itself")


def driven_stream(
    coalesce: CoalesceConfig | bool, kernel: Callable[..., Any]
) -> tuple[HTTPStream, list[bytes]]:
    """A response the test drives through ``stream.kernel.send`` itself: ``kernel`` as its
    sender, a clock that reads 1, 2, 3... and the bodies the server got (the list)."""
    ticks = iter(range(1, 1_000_000))
    boost = StreamBoost(
        _not_called,
        coalesce=coalesce,
        metrics=False,
        otel=False,
        clock=lambda: float(next(ticks)),
    )
    writes: list[bytes] = []

    async def server_send(message: Message) -> None:
        if message["type"] == "http.response.body":
            writes.append(bytes(message.get("body", b"")))

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    scope = dict(DRIVEN_SCOPE)
    return HTTPStream(boost.responses, scope, receive, server_send, kernel=kernel), writes
