"""The app's send under StreamBoost can be used every way the ASGI spec lets an app use it:
awaited, wrapped in a task (``asyncio.create_task``/``ensure_future``) and started by anyio's
``start_soon`` (both ask for a coroutine), on the buffered-chunk path of C and Python alike."""

from __future__ import annotations

import asyncio
from typing import Any

import anyio
import anyio.lowlevel
import httpx
import pytest
from tests.coalesce_apps import openai

from streamboost import StreamBoost
from streamboost._cli._loopback import uvicorn_in_thread

TOKENS = [openai(role="assistant")] + [openai(f"tok{i}") for i in range(40)]
TOKENS.append(openai(finish="stop"))


def _app(how: str) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        headers = [(b"content-type", b"text/event-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        async with anyio.create_task_group() as tg:
            for chunk in TOKENS:
                message = {"type": "http.response.body", "body": chunk, "more_body": True}
                if how == "create_task":
                    await asyncio.create_task(send(message))
                elif how == "ensure_future":
                    await asyncio.ensure_future(send(message))
                elif how == "start_soon":
                    tg.start_soon(send, message)
                    await (
                        anyio.lowlevel.checkpoint()
                    )  # the task runs before the next chunk: order kept
                else:
                    await send(message)
        await send({"type": "http.response.body", "body": b""})

    return app


@pytest.mark.parametrize("how", ["await", "create_task", "ensure_future", "start_soon"])
@pytest.mark.parametrize("coalesce", [True, False])
def test_send_works_as_a_task_and_under_start_soon(how: str, coalesce: bool) -> None:
    app = StreamBoost(_app(how), coalesce=coalesce, metrics=False, otel=False)
    with (
        uvicorn_in_thread(app) as url,
        httpx.Client(base_url=url, timeout=10) as client,
        client.stream("GET", "/") as response,
    ):
        assert response.status_code == 200
        assert response.read() == b"".join(TOKENS)
