"""sse-starlette's EventSourceResponse behind StreamBoost, on real uvicorn, read by httpx-sse.

sse-starlette ends every line CRLF (its ``DEFAULT_SEPARATOR``) and sends ``: ping`` comments
on its own timer; the kernel classifies such events as their LF versions (CRLF events,
docs/architecture.md). A FastAPI-style stream of OpenAI chat chunks, the role chunk first and
a finish chunk last, with pings between, must reach httpx-sse's client whole, and the record
must count every event, only the deltas as tokens, and the bytes sent, direct and coalesced.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from httpx_sse import connect_sse
from prometheus_client import CollectorRegistry
from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route
from tests.coalesce_apps import Records

from streamboost import StreamBoost
from streamboost._cli._loopback import uvicorn_in_thread

TOKENS = [f" word{i}" for i in range(30)]
PING = 0.05  # seconds between sse-starlette's pings: several during the stream


def _chunk(delta: dict[str, Any], finish: str | None = None) -> str:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    body = {"id": "c1", "object": "chat.completion.chunk", "model": "m", "choices": [choice]}
    return orjson.dumps(body).decode()


async def completions(request: Request) -> EventSourceResponse:
    async def events() -> AsyncIterator[dict[str, str]]:
        yield {"data": _chunk({"role": "assistant", "content": ""})}
        for token in TOKENS:
            await asyncio.sleep(0.01)
            yield {"data": _chunk({"content": token})}
        yield {"data": _chunk({}, finish="stop")}
        yield {"data": "[DONE]"}

    return EventSourceResponse(events(), ping=PING)


def _app(records: Records, coalesce: bool) -> StreamBoost:
    app = Starlette(routes=[Route("/v1/chat/completions", completions)])
    return StreamBoost(
        app, coalesce=coalesce, registry=CollectorRegistry(), observers=[records], otel=False
    )


@pytest.mark.parametrize("coalesce", [False, True], ids=["direct", "coalesced"])
def test_sse_starlette_crlf_events_reach_httpx_sse_whole_and_counted(coalesce: bool) -> None:
    records = Records()
    with (
        uvicorn_in_thread(_app(records, coalesce)) as url,
        httpx.Client(timeout=10) as client,
        connect_sse(client, "GET", url + "/v1/chat/completions") as source,
    ):
        raw: list[bytes] = []
        source.response.stream = _recording(source.response.stream, raw)
        data = [event.data for event in source.iter_sse()]
        deadline = time.monotonic() + 10  # stream_ended may follow the last byte
        while not records.ended and time.monotonic() < deadline:
            time.sleep(0.01)
    assert data[-1] == "[DONE]"
    text = "".join(orjson.loads(d)["choices"][0]["delta"].get("content", "") for d in data[:-1])
    assert text == "".join(TOKENS)
    body = b"".join(raw)
    assert b"\r\n\r\n" in body and b"\n\n" not in body  # sse-starlette's CRLF lines
    pings = body.count(b": ping")
    assert pings >= 2, body[:200]  # the stream lasts several ping intervals
    (record,) = records.ended
    assert record.outcome == "completed"
    assert record.events == len(TOKENS) + 3 + pings  # role, finish, [DONE], the pings
    assert record.content_events == len(TOKENS)
    assert record.bytes_out == len(body)
    assert record.first_token_at is not None


def _recording(stream: Any, raw: list[bytes]) -> Any:
    """The response's byte stream, keeping a copy of every piece read from it."""

    class Recording(httpx.SyncByteStream):
        def __iter__(self) -> Any:
            for piece in stream:
                raw.append(piece)
                yield piece

        def close(self) -> None:
            stream.close()

    return Recording()
