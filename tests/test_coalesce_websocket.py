"""WebSocket batching, opt-in (issue 2, coalescing point 7)."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket
from wsproto import ConnectionType, WSConnection
from wsproto.events import CloseConnection, Request, TextMessage

from streamboost import CoalesceConfig, StreamBoost
from streamboost._cli._loopback import uvicorn_in_thread

Message = dict[str, Any]
LONG = 30.0


async def run_ws(app: Any) -> list[Message]:
    sent: list[Message] = []
    incoming = [{"type": "websocket.connect"}]

    async def receive() -> Message:
        if incoming:
            return incoming.pop()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        sent.append(message)

    await app({"type": "websocket", "path": "/ws", "headers": []}, receive, send)
    return sent


def texts(sent: list[Message]) -> list[Any]:
    return [orjson.loads(m["text"]) for m in sent if m["type"] == "websocket.send"]


def msg(send: Any, item: object) -> Any:
    return send({"type": "websocket.send", "text": orjson.dumps(item).decode()})


async def test_json_messages_in_one_window_become_one_array() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await msg(send, {"type": "token", "i": 0})  # goes out at once
        await msg(send, {"type": "token", "i": 1})  # too: one short gap is jitter
        for i in range(2, 5):
            await msg(send, {"type": "token", "i": i})
        await asyncio.sleep(0.3)  # the window passes with nothing more sent
        await send({"type": "websocket.close", "code": 1000})

    sent = await run_ws(StreamBoost(app, coalesce=CoalesceConfig(window=0.02, websocket=True)))
    assert [m["type"] for m in sent] == [
        "websocket.accept",
        "websocket.send",
        "websocket.send",
        "websocket.send",
        "websocket.close",
    ]
    assert texts(sent) == [
        [{"type": "token", "i": 0}],
        [{"type": "token", "i": 1}],
        [{"type": "token", "i": i} for i in range(2, 5)],
    ]


async def test_critical_type_goes_out_at_once_with_the_batch() -> None:
    counts: list[int] = []
    sent_box: list[list[Message]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await msg(send, {"type": "token", "i": 0})
        await msg(send, {"type": "token", "i": 1})  # at once: one short gap is jitter
        await msg(send, {"type": "token", "i": 2})
        await msg(send, {"type": "done"})
        for _ in range(5):
            await asyncio.sleep(0)
        counts.append(len(sent_box[0]))
        await send({"type": "websocket.send", "text": "not json"})
        await send({"type": "websocket.send", "bytes": b"\x00"})
        await send({"type": "websocket.close", "code": 1000})

    async def recording(scope: Any, receive: Any, send: Any) -> None:
        sent: list[Message] = []
        sent_box.append(sent)

        async def record(message: Message) -> None:
            sent.append(message)

        await StreamBoost(app, coalesce=CoalesceConfig(window=LONG, websocket=True))(
            scope, receive, record
        )

    await run_ws(recording)
    sent = sent_box[0]
    assert counts == [4]  # accept, [token 0], [token 1], [token 2, done]
    assert texts(sent[:4]) == [
        [{"type": "token", "i": 0}],
        [{"type": "token", "i": 1}],
        [{"type": "token", "i": 2}, {"type": "done"}],
    ]
    assert sent[4] == {"type": "websocket.send", "text": "not json"}
    assert sent[5] == {"type": "websocket.send", "bytes": b"\x00"}


async def test_batches_are_capped() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        for i in range(23):
            await msg(send, {"i": i, "type": ["not", "a", "name"]})
        await send({"type": "websocket.close", "code": 1000})

    config = CoalesceConfig(window=LONG, websocket=True, max_events=5, max_bytes=128)
    arrays = texts(await run_ws(StreamBoost(app, coalesce=config)))
    assert [item["i"] for array in arrays for item in array] == list(range(23))
    assert all(len(array) <= 5 for array in arrays)
    assert all(len(orjson.dumps(array)) <= 128 for array in arrays)
    assert len(arrays) < 23


def read_websocket(base_url: str, path: str) -> list[str]:
    """A real WebSocket client (wsproto over a socket): every text message until close."""
    host, port = base_url.removeprefix("http://").split(":")
    connection = WSConnection(ConnectionType.CLIENT)
    messages: list[str] = []
    partial = ""
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(connection.send(Request(host=host, target=path)))
        while True:
            data = sock.recv(65536)
            if not data:
                return messages
            connection.receive_data(data)
            for event in connection.events():
                if isinstance(event, TextMessage):
                    partial += event.data
                    if event.message_finished:
                        messages.append(partial)
                        partial = ""
                elif isinstance(event, CloseConnection):
                    sock.sendall(connection.send(event.response()))
                    return messages


def test_websocket_batching_on_uvicorn_with_a_real_client() -> None:
    async def endpoint(websocket: WebSocket) -> None:
        await websocket.accept()
        for i in range(30):
            await websocket.send_json({"type": "token", "i": i})
            await asyncio.sleep(0.001)
        await websocket.send_json({"type": "complete"})
        await websocket.close()

    app = StreamBoost(
        Starlette(routes=[WebSocketRoute("/ws", endpoint)]),
        # A window far longer than the stream: batches end by count and critical type, never
        # by a 1 ms sleep that a loaded machine stretched past the window.
        coalesce=CoalesceConfig(window=0.2, websocket=True),
    )
    with uvicorn_in_thread(app, ws="wsproto") as url:
        messages = read_websocket(url, "/ws")
    received = [item for text in messages for item in orjson.loads(text)]
    assert received == [{"type": "token", "i": i} for i in range(30)] + [{"type": "complete"}]
    assert len(messages) < 15
