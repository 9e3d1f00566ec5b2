"""A simulated OpenAI-compatible model provider and a StreamBoost-wrapped app that calls it.

``Provider`` serves ``POST /v1/chat/completions`` (``chat.completion.chunk`` SSE, or one JSON
``chat.completion``) and ``POST /anthropic`` (Anthropic-style named events). The response
headers and a role-only first chunk go out at once; the first token follows ``DELAY`` seconds
later. The ``model`` field picks a misbehaviour instead of that delay: ``slow-headers`` (the
headers after ``SLOW`` s), ``stall`` (``SLOW`` s of silence after the first token). It
remembers the client address of every request, so a test can count the connections it was
given.

``chat_app`` is a Starlette app wrapped in StreamBoost whose ``/chat/stream`` and
``/chat/once`` run a ``retrieval`` phase, then call the provider with the official openai
SDK (``http_client=`` the client under test) and stream the tokens as SSE.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
from openai import AsyncOpenAI
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send
from tests.needs import wait_until_listening

from streamboost import StreamBoost, phase
from streamboost._stream import StreamObserver

DELAY = 0.3  # provider: response headers to the first token
SLOW = 1.5  # provider: the misbehaviours' silence
SSE = "text/event-stream"
TOKENS = ("Hello", " world", "!")


def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    body = {
        "id": "chatcmpl-sim",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "sim",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + orjson.dumps(body) + b"\n\n"


def named(event: str, data: dict[str, Any]) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


DONE = b"data: [DONE]\n\n"


class EventStream(Response):
    """SSE whose ``[DONE]`` event ends the body in the same message, as providers do: the
    openai SDK then finds the body's end at once (it drains an HTTP/1.1 body for 0.1 s at
    most before it closes the connection instead of handing it back to the pool)."""

    media_type = SSE

    def __init__(self, events: AsyncIterator[bytes], length: int | None = None) -> None:
        self.events = events  # no Response.__init__: it would declare a content-length
        self.length = length

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", SSE.encode())]
        if self.length is not None:
            # A known length: the body's end is its last byte, not a chunked terminator that
            # h11 writes apart, which a loaded machine could delay past the SDK's 0.1 s drain.
            headers.append((b"content-length", str(self.length).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        async for event in self.events:
            last = event == DONE
            await send({"type": "http.response.body", "body": event, "more_body": not last})
            if last:
                return
        await send({"type": "http.response.body", "body": b""})


class Provider:
    """The simulated provider (an ASGI app) and the client addresses it was called from."""

    def __init__(self) -> None:
        self.peers: list[tuple[str, int]] = []
        self.versions: list[str] = []  # scope["http_version"] of each request
        self._app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/anthropic", self._anthropic, methods=["POST"]),
            ]
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.peers.append(tuple(scope["client"]))
            self.versions.append(scope["http_version"])
        await self._app(scope, receive, send)

    def connections(self) -> int:
        return len(set(self.peers))

    async def _chat(self, request: Request) -> Response:
        body = await request.json()
        model = body.get("model", "sim")
        if model == "slow-headers":
            await asyncio.sleep(SLOW)
        if not body.get("stream"):
            await asyncio.sleep(DELAY)
            message = {"role": "assistant", "content": "".join(TOKENS)}
            return JSONResponse(
                {
                    "id": "chatcmpl-sim",
                    "object": "chat.completion",
                    "created": 1,
                    "model": model,
                    "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                }
            )

        first = chunk({"role": "assistant", "content": ""})  # the first byte, no token
        tokens = [chunk({"content": text}) for text in TOKENS]
        last = [chunk({}, "stop"), DONE]

        async def events() -> AsyncIterator[bytes]:
            yield first
            if model == "sim":
                await asyncio.sleep(DELAY)
            for i, token in enumerate(tokens):
                yield token
                if model == "stall" and i == 0:
                    await asyncio.sleep(SLOW)
            for part in last:
                yield part

        return EventStream(events(), sum(map(len, [first, *tokens, *last])))

    async def _anthropic(self, request: Request) -> Response:
        async def events() -> AsyncIterator[bytes]:
            yield named("message_start", {"type": "message_start", "message": {"id": "m"}})
            yield named("content_block_start", {"type": "content_block_start", "index": 0})
            yield named("ping", {"type": "ping"})
            await asyncio.sleep(DELAY)
            for text in TOKENS:
                delta = {"type": "text_delta", "text": text}
                yield named("content_block_delta", {"type": "content_block_delta", "delta": delta})
            yield named("message_stop", {"type": "message_stop"})

        return EventStream(events())


def chat_app(
    client: Any, provider_url: str, registry: CollectorRegistry, observer: StreamObserver
) -> StreamBoost:
    """``client`` (an httpx or httpx2 AsyncClient) is handed to the openai SDK and closed at
    the app's shutdown, in the server's loop."""
    openai = AsyncOpenAI(base_url=provider_url + "/v1", api_key="sim", http_client=client)

    async def retrieval() -> None:
        async with phase("retrieval"):
            await asyncio.sleep(0.01)

    async def stream(request: Request) -> Response:
        body = await request.json()
        await retrieval()
        upstream = await openai.chat.completions.create(
            model=body.get("model", "sim"),
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
        )

        async def tokens() -> AsyncIterator[bytes]:
            async for part in upstream:
                if part.choices and part.choices[0].delta.content:
                    yield b"data: " + orjson.dumps({"content": part.choices[0].delta.content})
                    yield b"\n\n"
            yield b"data: [DONE]\n\n"

        return StreamingResponse(tokens(), media_type=SSE)

    async def once(request: Request) -> Response:
        await retrieval()
        answer = await openai.chat.completions.create(
            model="sim", messages=[{"role": "user", "content": "hi"}]
        )
        content = answer.choices[0].message.content or ""

        async def tokens() -> AsyncIterator[bytes]:
            yield b"data: " + orjson.dumps({"content": content}) + b"\n\n"

        return StreamingResponse(tokens(), media_type=SSE)

    async def anthropic(request: Request) -> Response:
        async def tokens() -> AsyncIterator[bytes]:
            async with client.stream("POST", provider_url + "/anthropic", json={}) as response:
                async for line in response.aiter_lines():
                    if line.startswith("data:") and "text_delta" in line:
                        yield line.encode() + b"\n\n"

        return StreamingResponse(tokens(), media_type=SSE)

    async def abandon(request: Request) -> Response:
        """Reads the provider's first chunk (role only, no token) and closes the response."""
        body = {"stream": True, "model": "sim"}
        async with client.stream("POST", provider_url + "/v1/chat/completions", json=body) as r:
            async for _ in r.aiter_raw():
                break

        async def tokens() -> AsyncIterator[bytes]:
            yield b'data: {"content": "gave up"}\n\n'

        return StreamingResponse(tokens(), media_type=SSE)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await openai.close()  # closes the http_client it was given

    routes = [
        Route("/chat/stream", stream, methods=["POST"]),
        Route("/chat/once", once, methods=["POST"]),
        Route("/chat/anthropic", anthropic, methods=["POST"]),
        Route("/chat/abandon", abandon, methods=["POST"]),
    ]
    return StreamBoost(
        Starlette(routes=routes, lifespan=lifespan),
        registry=registry,
        observers=[observer],
        otel=False,
    )


def scrape(base_url: str) -> Callable[..., float]:
    """The app's /metrics, as ``value(sample_name, **labels)`` (0.0 when absent)."""
    text = httpx.get(base_url + "/metrics", timeout=10).text
    samples = [
        sample for family in text_string_to_metric_families(text) for sample in family.samples
    ]

    def value(name: str, **labels: str) -> float:
        found = [s.value for s in samples if s.name == name and s.labels == labels]
        return found[0] if found else 0.0

    return value


@contextmanager
def hypercorn_tls(app: Any, certfile: Path, keyfile: Path) -> Iterator[str]:
    """Serve ``app`` with hypercorn over TLS on 127.0.0.1 (ALPN offers h2 and http/1.1);
    yield ``https://127.0.0.1:PORT``."""
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.listen(128)
    config = Config()
    config.bind = [f"fd://{sock.detach()}"]  # hypercorn owns and closes the socket
    config.certfile, config.keyfile = str(certfile), str(keyfile)
    config.loglevel = "WARNING"
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    def run() -> None:
        loop.run_until_complete(serve(app, config, shutdown_trigger=stop.wait))
        loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        wait_until_listening(port, "hypercorn", seconds=10)
        yield f"https://127.0.0.1:{port}"
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
