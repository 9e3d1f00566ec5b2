"""The WebSocket batching contract (issue 15, point 6): every batch is an array, scalars too;
one route (``websocket_exclude``) or one connection (the opt-out header on the accept) stays
unbatched. Every ASGI message recorded in process, then the real ``websockets`` client
against real uvicorn."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry
from websockets.asyncio.client import connect

from streamboost import CoalesceConfig, StreamBoost
from streamboost._cli._loopback import uvicorn_in_thread
from ws_apps import sample, scrape_until, ws_app, ws_url

Message = dict[str, Any]
LONG = 30.0
WS = "websockets-sansio"
# What the scalars endpoint sends for each question, as the app sends it.
UNBATCHED: list[Any] = [
    "scalar",
    {"type": "token", "i": 1},
    [1, 2],
    None,
    "hello",
    {"type": "done"},
]
# The same batched: the first at once, the second too (one short gap is jitter), two in one
# window, plain text as it is (after the batch before it), the critical "done" at once.
BATCHED: list[Any] = [
    ["scalar"],
    [{"type": "token", "i": 1}],
    [[1, 2], None],
    "hello",
    [{"type": "done"}],
]


def websocket_scope(path: str, query: bytes = b"") -> dict[str, Any]:
    return {
        "type": "websocket",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "scheme": "ws",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": query,
        "headers": [(b"host", b"test")],
        "server": ("127.0.0.1", 80),
        "client": ("127.0.0.1", 1234),
        "subprotocols": [],
    }


async def record_connection(app: Any, path: str, query: bytes = b"") -> list[Message]:
    """Connect, ask once, and disconnect once the app waits for the next question; returns
    every message the app's ASGI layer sent to the server, in order."""
    sent: list[Message] = []
    incoming: list[Message] = [
        {"type": "websocket.connect"},
        {"type": "websocket.receive", "text": "go"},
    ]

    async def receive() -> Message:
        if incoming:
            return incoming.pop(0)
        for _ in range(100):  # let the flusher write what the app sent (bounded)
            await asyncio.sleep(0)
        return {"type": "websocket.disconnect", "code": 1000}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(websocket_scope(path, query), receive, send)
    return sent


def texts(sent: list[Message]) -> list[Any]:
    out: list[Any] = []
    for m in sent:
        if m["type"] == "websocket.send":
            try:
                out.append(orjson.loads(m["text"]))
            except orjson.JSONDecodeError:
                out.append(m["text"])
    return out


async def test_every_batch_is_an_array_scalars_too() -> None:
    app = StreamBoost(ws_app(), coalesce=CoalesceConfig(window=LONG, websocket=True))
    sent = await record_connection(app, "/batched/r")
    assert [m["type"] for m in sent] == ["websocket.accept"] + ["websocket.send"] * 5
    assert texts(sent) == BATCHED
    assert sent[1]["text"] == '["scalar"]'


async def test_an_excluded_route_is_not_batched() -> None:
    config = CoalesceConfig(window=LONG, websocket=True, websocket_exclude={"/raw/{room}"})
    app = StreamBoost(ws_app(), coalesce=config)
    raw = await record_connection(app, "/raw/r")
    assert texts(raw) == UNBATCHED
    assert raw[1]["text"] == '"scalar"'
    # The other route of the same app still batches.
    assert texts(await record_connection(app, "/batched/r")) == BATCHED


async def test_the_opt_out_header_on_the_accept_keeps_one_connection_unbatched() -> None:
    app = StreamBoost(ws_app(), coalesce=CoalesceConfig(window=LONG, websocket=True))
    sent = await record_connection(app, "/batched/r", b"opt_out=1")
    assert texts(sent) == UNBATCHED
    accept = sent[0]
    assert accept["type"] == "websocket.accept"
    assert b"x-streamboost-opt-out" not in dict(accept.get("headers", []))


async def test_unbatched_messages_reach_the_server_as_the_app_sent_them() -> None:
    seen: list[Message] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        for message in (
            {"type": "websocket.accept", "headers": [(b"x-app", b"1")]},
            {"type": "websocket.send", "text": '"scalar"'},
            {"type": "websocket.send", "bytes": b"\x00"},
            {"type": "websocket.close", "code": 4000, "reason": "bye"},
        ):
            seen.append(message)
            await send(message)

    excluded = CoalesceConfig(websocket=True, websocket_exclude={"/ws"})
    for boosted in (
        StreamBoost(app),  # batching off, metrics on
        # Batching on, this route excluded; its label comes from route= (no router here).
        StreamBoost(app, coalesce=excluded, route=lambda scope: scope["path"]),
    ):
        seen.clear()
        sent = await record_connection(boosted, "/ws")
        # Counted, not copied: the very dicts the app sent.
        assert len(sent) == 4
        assert all(a is b for a, b in zip(sent, seen, strict=True))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"websocket": True, "websocket_exclude": "/ws"}, "must be a collection of route"),
        ({"websocket": True, "websocket_exclude": {"ws/raw"}}, "starting with '/'"),
        ({"websocket": True, "websocket_exclude": {3}}, "holds 3"),
        ({"websocket_exclude": {"/ws"}}, "no effect without websocket=True"),
    ],
)
def test_websocket_exclude_is_validated(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CoalesceConfig(**kwargs)


def test_batched_and_excluded_routes_on_uvicorn_with_the_websockets_client() -> None:
    registry = CollectorRegistry()
    config = CoalesceConfig(window=LONG, websocket=True, websocket_exclude={"/raw/{room}"})
    app = StreamBoost(ws_app(), coalesce=config, registry=registry, otel=False)

    async def ask(base: str, path: str, handshake: list[Any]) -> list[Any]:
        got: list[Any] = []
        async with connect(ws_url(base, path)) as ws:
            handshake.append(ws.response.headers)
            await ws.send("go")
            while len(got) < 6:
                text = await ws.recv()
                assert isinstance(text, str)
                got.append(text if text == "hello" else orjson.loads(text))
                if got[-1] in ({"type": "done"}, [{"type": "done"}]):
                    break
        return got

    async def clients(base: str) -> tuple[list[Any], list[Any], list[Any], list[Any]]:
        headers: list[Any] = []
        batched = await ask(base, "/batched/a", headers)
        raw = await ask(base, "/raw/a", headers)
        opted = await ask(base, "/batched/b?opt_out=1", headers)
        return batched, raw, opted, headers

    with uvicorn_in_thread(app, ws=WS) as base:
        batched, raw, opted, headers = asyncio.run(clients(base))
        samples = scrape_until(
            base,
            lambda s: sum(v for (n, _), v in s.items() if n.endswith("connections_total")) == 3,
        )
    assert batched == BATCHED
    assert raw == UNBATCHED
    assert opted == UNBATCHED
    assert all("x-streamboost-opt-out" not in h for h in headers)
    out, writes = "streamboost_websocket_messages_total", "streamboost_websocket_writes_total"
    assert sample(samples, out, route="/batched/{room}", direction="out") == 12
    assert sample(samples, writes, route="/batched/{room}") == 5 + 6  # batched + opted out
    assert sample(samples, out, route="/raw/{room}", direction="out") == 6
    assert sample(samples, writes, route="/raw/{room}") == 6
