"""WebSocket apps and helpers for the WebSocket metrics and batching tests.

``server_app`` is also served by uvicorn subprocesses (``tests.ws_apps:server_app``) in
Prometheus multiprocess mode.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from streamboost import StreamBoost


async def room(websocket: WebSocket) -> None:
    """``/ws/{room}``: accept, answer each text message with ``{"echo": text}``; the text
    ``close:<code>`` makes the app close with that code; a client close ends it."""
    await websocket.accept()
    try:
        while True:
            text = await websocket.receive_text()
            if text.startswith("close:"):
                await websocket.close(code=int(text.removeprefix("close:")))
                return
            await websocket.send_json({"echo": text})
    except WebSocketDisconnect:
        return


async def scalars(websocket: WebSocket) -> None:
    """Each text message ``n`` is answered with n JSON messages: a scalar, an object, a list,
    ``null``, then ``{"type": "done"}``; plain text ``hello`` goes out as it is."""
    await websocket.accept(headers=[(b"x-streamboost-opt-out", b"1")] if _opted(websocket) else [])
    try:
        while True:
            await websocket.receive_text()
            await websocket.send_json("scalar")
            await websocket.send_json({"type": "token", "i": 1})
            await websocket.send_json([1, 2])
            await websocket.send_json(None)
            await websocket.send_text("hello")
            await websocket.send_json({"type": "done"})
    except WebSocketDisconnect:
        return


def _opted(websocket: WebSocket) -> bool:
    return websocket.query_params.get("opt_out") == "1"


async def reject(websocket: WebSocket) -> None:
    await websocket.close(code=1008)  # before accepting: the handshake is refused


async def boom(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.receive_text()
    raise RuntimeError("the app failed after the accept")


async def health(request: Any) -> Any:
    from starlette.responses import PlainTextResponse

    return PlainTextResponse("ok")


def ws_app() -> Starlette:
    return Starlette(
        routes=[
            Route("/health", health),
            WebSocketRoute("/ws/{room}", room),
            WebSocketRoute("/raw/{room}", scalars),
            WebSocketRoute("/batched/{room}", scalars),
            WebSocketRoute("/reject", reject),
            WebSocketRoute("/boom", boom),
            Mount("/rooms", routes=[WebSocketRoute("/{room}/live", room)]),
        ]
    )


# Served by the multiprocess tests: the default registry (files when PROMETHEUS_MULTIPROC_DIR
# is set), batching off.
server_app = StreamBoost(ws_app(), otel=False)


def ws_url(base_url: str, path: str) -> str:
    return "ws://" + base_url.removeprefix("http://") + path


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(base_url: str) -> Samples:
    """Every ``streamboost_websocket_*`` sample of ``/metrics``: (name, sorted labels) -> value."""
    response = httpx.get(base_url + "/metrics", timeout=10)
    assert response.status_code == 200, response.text
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        if family.name.startswith("streamboost_websocket_"):
            for s in family.samples:
                samples[s.name, tuple(sorted(s.labels.items()))] = s.value
    return samples


def sample(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value; 0.0 when the series does not exist."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def scrape_until(base_url: str, done: Callable[[Samples], bool], seconds: float = 15) -> Samples:
    """Scrape until ``done(samples)`` (the server observes a close after the client saw it);
    bounded, returns the last scrape either way."""
    deadline = time.monotonic() + seconds
    while True:
        samples = scrape(base_url)
        if done(samples) or time.monotonic() > deadline:
            return samples
        time.sleep(0.05)
