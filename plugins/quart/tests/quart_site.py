"""A Quart app for the plugin's tests: served as ``quart_site:asgi``."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import streamboost_quart
from quart import Quart

from streamboost import StreamBoost, defer

TOKENS = 20
DEFERRED = Path(os.environ.get("DEFERRED_FILE", os.devnull))

app = Quart(__name__)


def record(room: int) -> None:
    time.sleep(0.3)  # still pending when the server is told to stop
    with DEFERRED.open("a") as out:
        out.write(f"room {room}\n")


@app.get("/chat/<int:room>/stream")
async def chat(room: int) -> tuple[AsyncIterator[bytes], dict[str, str]]:
    async def events() -> AsyncIterator[bytes]:
        for n in range(TOKENS):
            await asyncio.sleep(0)
            yield f"data: token {n}\n\n".encode()
        yield b"data: [DONE]\n\n"

    defer(record, room)
    return events(), {"content-type": "text/event-stream"}


streamboost_quart.init_app(app)
asgi = StreamBoost(app, route=streamboost_quart.route, otel=False)  # type: ignore[arg-type]
