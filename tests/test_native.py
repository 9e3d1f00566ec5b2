"""The C send path (``streamboost._speedups``) against the Python one, message by message.

``HTTPStream.send`` is the C method when the extension is built; ``HTTPStream._send_slow`` is
the whole Python path. The same stream sent through each must leave the same record and put
the same writes on the wire. CI sets ``STREAMBOOST_REQUIRE_NATIVE=1`` (the extension must have
been built) and runs the whole suite a second time with ``STREAMBOOST_NO_EXTENSIONS=1``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.coalesce_apps import openai

from streamboost import CoalesceConfig, StreamBoost
from streamboost._http import HTTPStream
from streamboost._native import NATIVE
from streamboost._state_py import StreamBase as PyStreamBase

needs_native = pytest.mark.skipif(
    not NATIVE, reason="streamboost._speedups is not built (or STREAMBOOST_NO_EXTENSIONS is set)"
)


def test_the_c_path_is_built_where_ci_requires_it() -> None:
    if os.environ.get("STREAMBOOST_REQUIRE_NATIVE") == "1" and not os.environ.get(
        "STREAMBOOST_NO_EXTENSIONS"
    ):
        assert NATIVE, "streamboost._speedups did not build: see `uv sync -v` for the compiler"


def test_the_python_path_is_the_send_without_the_extension() -> None:
    if NATIVE:
        assert HTTPStream.send is not HTTPStream._send_slow
        assert not isinstance(HTTPStream.send, type(PyStreamBase.send))  # a C method
    else:
        assert HTTPStream.send is HTTPStream._send_slow


async def _app(scope: Any, receive: Any, send: Any) -> None:
    raise AssertionError("not called: the test drives HTTPStream itself")


SCOPE = {"type": "http", "method": "GET", "path": "/", "headers": [], "query_string": b""}
START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"text/event-stream; charset=utf-8")],
}
FIELDS = (
    "chunks_in",
    "events",
    "content_events",
    "writes",
    "bytes_out",
    "first_byte_at",
    "first_token_at",
    "last_token_at",
    "last_body_at",
    "outcome",
)


async def _run(
    chunks: list[bytes | memoryview], coalesce: bool, pick: Callable[[HTTPStream], Any]
) -> tuple[tuple[object, ...], list[bytes]]:
    ticks = iter(range(1, 1_000_000))
    boost = StreamBoost(
        _app,
        coalesce=CoalesceConfig(max_events=4, max_bytes=600, max_buffer_bytes=900)
        if coalesce
        else False,
        metrics=False,
        otel=False,
        clock=lambda: float(next(ticks)),
    )
    writes: list[bytes] = []

    async def server_send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            writes.append(bytes(message.get("body", b"")))

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    stream = HTTPStream(boost, dict(SCOPE), receive, server_send)
    send: Callable[[dict[str, Any]], Awaitable[None]] = pick(stream)
    await send(dict(START))
    for chunk in chunks:
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await asyncio.sleep(0)  # let a flusher the chunk woke write, as between real tokens
    await send({"type": "http.response.body", "body": b"", "more_body": False})
    coalescer = stream._coalescer
    if coalescer is not None:
        coalescer.close()
    record = stream.record
    return tuple(getattr(record, name) for name in FIELDS), writes


def _content(text: str) -> bytes:
    return openai(text)


CHUNK = st.one_of(
    st.text(alphabet='ab "\\\n\u00e9', min_size=0, max_size=6).map(_content),
    st.sampled_from(
        [
            openai(role="assistant"),
            openai(finish="stop"),
            b"data: [DONE]\n\n",
            b": ping\n\n",
            b"event: metadata\ndata: {}\n\n",
            openai("x") + openai("y"),
            openai("split")[:20],
            openai("split")[20:],
            b'data: {"type":"error"}\n\n',
            openai("crlf").replace(b"\n\n", b"\r\n\r\n"),
            openai("cr").replace(b"\n\n", b"\r\r"),
            openai("cr")[:-1] + b"\r",  # LF then CR: a blank line
            b"\n",  # the LF that completes a CRLF the chunk before ended with its CR
            openai("two\rlines").replace(b"\\r", b"\r"),  # a raw CR inside: not JSON
            openai("two\revents").replace(b"\\r", b"\r\r"),
        ]
    ),
    st.tuples(
        st.text(alphabet="ab", min_size=1, max_size=4),
        st.sampled_from([b"\n\n", b"\r\n\r\n", b"\r\r", b"\n\r\n", b"\r\r\n"]),
    ).map(lambda t: _content(t[0])[:-2] + t[1]),
    st.text(alphabet="abc", min_size=1, max_size=3).map(lambda t: memoryview(_content(t))),
)


@needs_native
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chunks=st.lists(CHUNK, max_size=30), coalesce=st.booleans())
def test_the_c_path_leaves_what_the_python_path_leaves(
    chunks: list[bytes | memoryview], coalesce: bool
) -> None:
    chunks = [_content("first"), *chunks]  # the shape is learned from the second token on

    async def both() -> None:
        native = await _run(chunks, coalesce, lambda stream: stream.send)
        python = await _run(chunks, coalesce, lambda stream: stream._send_slow)
        assert native == python

    asyncio.run(both())


@needs_native
@pytest.mark.parametrize("coalesce", [True, False])
def test_a_long_token_stream_takes_the_c_path_and_keeps_every_byte(
    coalesce: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    tokens = [_content(f"token{i} ") for i in range(300)]
    python_send = HTTPStream._send_slow
    calls = 0

    def counted(self: HTTPStream, message: dict[str, Any]) -> Awaitable[None]:
        nonlocal calls
        calls += 1
        return python_send(self, message)

    monkeypatch.setattr(HTTPStream, "_send_slow", counted)

    async def both() -> None:
        nonlocal calls
        native = await _run(list(tokens), coalesce, lambda stream: stream.send)
        native_calls, calls = calls, 0
        python = await _run(list(tokens), coalesce, lambda stream: stream._send_slow)
        assert native == python
        assert b"".join(native[1]) == b"".join(tokens)
        assert native[0][FIELDS.index("content_events")] == 300
        # The start, the tokens before the shape is learned, and a chunk after each write
        # (a batch must be waiting for the C path to join it) go to Python; the rest is C.
        assert native_calls < 302 // 3, native_calls

    asyncio.run(both())


async def _backpressure(pick: Callable[[HTTPStream], Any]) -> tuple[int, tuple[object, ...], int]:
    """Chunks the app got through before its send waited on a full buffer; record; bytes."""
    boost = StreamBoost(
        _app,
        coalesce=CoalesceConfig(window=5.0, max_events=1000, max_bytes=2000, max_buffer_bytes=2000),
        metrics=False,
        otel=False,
    )
    gate = asyncio.Event()
    gate.set()
    written: list[bytes] = []

    async def server_send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            await gate.wait()
            written.append(bytes(message.get("body", b"")))

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    stream = HTTPStream(boost, dict(SCOPE), receive, server_send)
    send = pick(stream)
    progress = 0

    async def app() -> None:
        nonlocal progress
        await send(dict(START))
        for i in range(60):
            await send({"type": "http.response.body", "body": _content(f"t{i}"), "more_body": True})
            progress += 1
            if i == 1:
                gate.clear()  # the client stops reading after the first tokens
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    task = asyncio.create_task(app())
    for _ in range(20):
        await asyncio.sleep(0)
    stalled_at = progress
    gate.set()
    await asyncio.wait_for(task, 5)
    assert stream._coalescer is not None
    stream._coalescer.close()
    record = stream.record
    fields = tuple(getattr(record, name) for name in FIELDS if not name.endswith("_at"))
    return stalled_at, fields, len(b"".join(written))


@needs_native
def test_a_full_buffer_makes_the_apps_send_wait_on_the_c_path_too() -> None:
    async def both() -> None:
        native = await _backpressure(lambda stream: stream.send)
        python = await _backpressure(lambda stream: stream._send_slow)
        assert native == python
        stalled_at, _, size = native
        assert 2 < stalled_at < 60  # it waited for room, then finished
        assert size == sum(len(_content(f"t{i}")) for i in range(60))

    asyncio.run(both())
