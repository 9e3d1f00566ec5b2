"""The app the Grafana end-to-end test scrapes: the example chat backend in boosted mode (its
loads run as phases with gather_phases, its writes deferred into SQLite, wrapped in StreamBoost,
which serves /metrics) with fast simulated latencies; profile and history cached in memory.

``worker_app`` is the same app for the multi-worker variant: a server subprocess imports it
(``uvicorn --factory tests.e2e_app:worker_app``) in each worker."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from examples.chat.app import create_app
from examples.chat.settings import ChatSettings, Latencies
from examples.chat.store import ChatWrites, SQLiteStore
from prometheus_client import CollectorRegistry
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from streamboost import Cache

FAST = Latencies(0.005, 0.005, 0.005, 0.005, 0.005)


def build_app(workdir: Path) -> Any:
    """A fresh app with its own registry: its /metrics shows this app only, whatever other
    tests in the process counted in the default registry."""
    registry = CollectorRegistry()
    settings = ChatSettings(
        mode="boosted", model_ttft=0.02, tokens_per_second=100, max_tokens=16, latencies=FAST
    )
    writes = ChatWrites(
        SQLiteStore(str(workdir / "chat.sqlite3")),
        name="e2e_messages",
        max_delay=0.05,
        dead_letter=workdir / "dead-letters.jsonl",
        registry=registry,
    )
    cache = Cache("memory://", namespace="e2e", name="e2e", registry=registry)
    boosted = create_app(settings, writes=writes, cache=cache, registry=registry)
    boosted.app.add_api_websocket_route("/chat/ws/{session_id}", chat_socket)
    return boosted


async def chat_socket(websocket: WebSocket) -> None:
    """``/chat/ws/{session_id}``: each text message is answered with 8 token messages and a
    ``{"type": "done"}``; the client closes (the WebSocket panels' traffic)."""
    await websocket.accept()
    try:
        while True:
            await websocket.receive_text()
            for i in range(8):
                await websocket.send_json({"type": "token", "i": i})
                await asyncio.sleep(0.005)
            await websocket.send_json({"type": "done"})
    except WebSocketDisconnect:
        return


WORKDIR_ENV = "STREAMBOOST_E2E_DIR"


def worker_app() -> ASGIApp:
    """``build_app`` in ``$STREAMBOOST_E2E_DIR`` (one SQLite file for all workers), each response
    marked with its worker's PID so the test can tell that both workers serve."""
    app = build_app(Path(os.environ[WORKDIR_ENV]))
    pid = str(os.getpid()).encode()

    async def marked(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return

        async def send_marked(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {
                    **message,
                    "headers": [*message.get("headers", []), (b"x-worker-pid", pid)],
                }
            await send(message)

        await app(scope, receive, send_marked)

    return marked
