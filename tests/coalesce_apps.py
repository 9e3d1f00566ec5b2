"""Small ASGI apps and an in-process recorder for the coalescing and middleware tests.

granian needs an import string: it serves ``tests.coalesce_apps:granian_app``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from streamboost import CoalesceConfig, StreamBoost
from streamboost._timing import StreamRecord

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
    """An observer keeping every record it is handed, and the call order."""

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


def boosted(app: Any, config: CoalesceConfig | bool = True, **kwargs: Any) -> StreamBoost:
    return StreamBoost(app, coalesce=config, **kwargs)


async def _granian_inner(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    steps = [(0.0, sse("first"))] + [(0.001, sse(f"token {i}")) for i in range(60)]
    steps.append((0.0, sse("{}", event="done")))
    await stream_app(steps)(scope, receive, send)


granian_app = StreamBoost(_granian_inner, coalesce=CoalesceConfig(window=0.02))
