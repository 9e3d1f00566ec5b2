"""A Litestar app for the plugin's tests: served as ``litestar_site:app``."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

from litestar import Litestar, get
from litestar.response import Stream
from streamboost_litestar import StreamBoostPlugin

from streamboost import defer

DEFERRED = Path(os.environ.get("DEFERRED_FILE", os.devnull))


def record(room: int) -> None:
    time.sleep(0.3)  # still pending when the server is told to stop
    with DEFERRED.open("a") as out:
        out.write(f"room {room}\n")


@get("/chat/{room:int}/stream")
async def chat(room: int) -> Stream:
    async def events() -> AsyncIterator[bytes]:
        for n in range(20):
            await asyncio.sleep(0)
            yield f"data: token {n}\n\n".encode()
        yield b"data: [DONE]\n\n"

    defer(record, room)
    return Stream(events(), media_type="text/event-stream")


app = Litestar([chat], plugins=[StreamBoostPlugin(otel=False)])
