"""SSE streams with LF, CRLF and CR line endings go out event by event (issue 11, point 5).

Lock-step with a real client under real uvicorn: the app sends the next event only once the
client has read the one before, so an event StreamBoost held back (waiting for a boundary it
does not recognise) would stop the stream, and the app reports that it waited in vain.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx
import pytest

from streamboost import StreamBoost
from streamboost._cli._loopback import uvicorn_in_thread

ENDINGS = {"lf": b"\n", "crlf": b"\r\n", "cr": b"\r"}
TOKENS = 12


def events(ending: bytes) -> list[bytes]:
    first = b"event: message" + ending + b"data: first" + ending + ending
    return [first] + [b"data: token " + str(i).encode() + ending + ending for i in range(TOKENS)]


def lock_step_app(stream: list[bytes], read: list[threading.Event], late: list[int]) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        headers = [(b"content-type", b"text/event-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for index, event in enumerate(stream):
            await send({"type": "http.response.body", "body": event, "more_body": True})
            for _ in range(500):  # bounded: ~5 s for the client to read this event
                if read[index].is_set():
                    break
                await asyncio.sleep(0.01)
            else:
                late.append(index)  # held back: give up waiting, the test fails below
        await send({"type": "http.response.body", "body": b""})

    return app


@pytest.mark.parametrize("ending", sorted(ENDINGS))
@pytest.mark.parametrize("coalesce", [True, False])
def test_each_event_reaches_the_client_before_the_next_is_sent(ending: str, coalesce: bool) -> None:
    stream = events(ENDINGS[ending])
    read = [threading.Event() for _ in stream]
    late: list[int] = []
    app = StreamBoost(
        lock_step_app(stream, read, late), coalesce=coalesce, metrics=False, otel=False
    )
    received = b""
    with (
        uvicorn_in_thread(app) as url,
        httpx.Client(base_url=url, timeout=30) as client,
        client.stream("GET", "/") as response,
    ):
        wanted = 0
        for piece in response.iter_raw():
            received += piece
            while wanted < len(stream) and len(received) >= sum(map(len, stream[: wanted + 1])):
                read[wanted].set()
                wanted += 1
    assert received == b"".join(stream)
    assert late == []
