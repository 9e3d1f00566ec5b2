"""A sparse coalesced stream on the kernel's write-at-once path, C and Python alike (issue 13).

With nothing buffered, a one-event chunk the Coalescer would write at once (eager until the
first token, or at least ``window / 2`` after the event before) is written by the kernel's
sender itself: the app's message straight to the server's send, no Python sender, no flusher.
The gaps below are ``asyncio.sleep`` calls longer than that half window, so every event is
sparse whatever the machine's speed (a slower machine only makes the gaps longer).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from tests.coalesce_apps import openai

from streamboost import CoalesceConfig, StreamBoost
from streamboost._stream import NATIVE, HTTPStream, _kernel
from streamboost._stream._kernel import PyBatchBase, PySender
from streamboost._stream._record import OUTCOME_CLIENT_DISCONNECTED
from streamboost._stream._senders import Coalesced

KERNELS = [pytest.param(PySender, id="python")]
if NATIVE:
    KERNELS.append(pytest.param(_kernel.Sender, id="c"))

SCOPE = {"type": "http", "method": "GET", "path": "/", "headers": [], "query_string": b""}
START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"text/event-stream")],
}
GAP = 0.003  # seconds between events: six times the half window below
FIELDS = ("chunks_in", "events", "content_events", "writes", "bytes_out", "first_token_at")

Kernel = Callable[[Callable[[Any], Awaitable[None]]], Any]


async def _app(scope: Any, receive: Any, send: Any) -> None:
    raise AssertionError("not called: the test drives HTTPStream itself")


def _stream(kernel: Kernel, send: Any, config: CoalesceConfig) -> HTTPStream:
    ticks = iter(range(1, 1_000_000))
    boost = StreamBoost(
        _app, coalesce=config, metrics=False, otel=False, clock=lambda: float(next(ticks))
    )

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    return HTTPStream(boost.responses, dict(SCOPE), receive, send, kernel=kernel)


async def _sparse(kernel: Kernel, tokens: list[bytes]) -> tuple[tuple[object, ...], list[bytes]]:
    writes: list[bytes] = []

    async def server_send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            writes.append(bytes(message.get("body", b"")))

    stream = _stream(kernel, server_send, CoalesceConfig(window=0.001))
    send = stream.kernel.send
    await send(dict(START))
    for token in tokens:
        await send({"type": "http.response.body", "body": token, "more_body": True})
        await asyncio.sleep(GAP)
    coalescer = stream._coalesced
    assert coalescer is not None and coalescer.write_now
    assert coalescer.flusher is None  # no batch ever waited: no flusher was made
    await send({"type": "http.response.body", "body": b"", "more_body": False})
    coalescer.close()
    return tuple(getattr(stream.record, name) for name in FIELDS), writes


@pytest.mark.parametrize("kernel", KERNELS)
def test_sparse_events_are_written_one_by_one_by_the_kernel(
    kernel: Kernel, monkeypatch: pytest.MonkeyPatch
) -> None:
    tokens = [openai(role="assistant")] + [openai(f"t{i}") for i in range(12)]
    calls = 0
    general = Coalesced.general

    def counted(self: Coalesced, message: dict[str, Any]) -> Awaitable[None]:
        nonlocal calls
        calls += 1
        return general(self, message)

    monkeypatch.setattr(Coalesced, "general", counted)
    record, writes = asyncio.run(_sparse(kernel, tokens))
    assert writes[:-1] == tokens  # one write per event, the app's own bytes, in order
    assert writes[-1] == b""
    assert record[:5] == (len(tokens) + 1, len(tokens), 12, len(tokens) + 1, len(b"".join(tokens)))
    assert calls == 1  # only the body's last message took the Python sender


@pytest.mark.skipif(not NATIVE, reason="streamboost._speedups is not built")
def test_the_c_and_python_kernels_write_sparse_events_alike() -> None:
    tokens = [openai(role="assistant")] + [openai(f"t{i}") for i in range(8)]
    native = asyncio.run(_sparse(_kernel.Sender, tokens))
    python = asyncio.run(_sparse(PySender, tokens))
    assert native == python


@pytest.mark.parametrize("kernel", KERNELS)
def test_a_failed_server_send_on_the_kernels_write_is_the_client_leaving(kernel: Kernel) -> None:
    async def server_send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body" and message.get("body"):
            raise OSError("the client is gone")

    stream = _stream(kernel, server_send, CoalesceConfig(window=0.001))

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(dict(START))
        await send({"type": "http.response.body", "body": openai("t"), "more_body": True})

    stream._settings = dataclasses.replace(stream._settings, app=app)

    async def run() -> None:
        with pytest.raises(OSError, match="the client is gone"):
            await stream.run()

    asyncio.run(run())
    assert stream.record.outcome == OUTCOME_CLIENT_DISCONNECTED
    assert stream.record.writes == 1  # the write was counted before the server refused it


@pytest.mark.parametrize(
    "config",
    [
        CoalesceConfig(window=0.001, send_timeout=5.0),
        CoalesceConfig(window=0.001, keepalive=15.0),
        CoalesceConfig(window=0.001, stall_timeout=60.0),
    ],
    ids=["send_timeout", "keepalive", "stall_timeout"],
)
def test_a_bounded_or_watched_write_stays_the_coalescers_own(config: CoalesceConfig) -> None:
    """A write that send_timeout bounds, or that the health timer must see in flight, is
    never handed to the server by the kernel: it keeps the Coalescer's write."""
    writes: list[bytes] = []

    async def server_send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            writes.append(bytes(message.get("body", b"")))

    async def run() -> None:
        stream = _stream(PySender, server_send, config)
        await stream.kernel.send(dict(START))
        coalescer = stream._coalesced
        assert coalescer is not None and not coalescer.write_now
        for i in range(3):
            body = openai(f"t{i}")
            await stream.kernel.send(
                {"type": "http.response.body", "body": body, "more_body": True}
            )
            await asyncio.sleep(GAP)
        await stream.kernel.send({"type": "http.response.body", "body": b"", "more_body": False})
        coalescer.close()

    asyncio.run(run())
    assert b"".join(writes) == b"".join(openai(f"t{i}") for i in range(3))


@pytest.mark.skipif(not NATIVE, reason="streamboost._speedups is not built")
def test_add_makes_the_ready_list_when_no_batch_waits_alike() -> None:
    batches = [_kernel.BatchBase(), PyBatchBase()]
    for batch in batches:
        batch.ready = None
        batch.ready_bytes = batch.ready_events = batch.ready_content = 0
        batch.pending_bytes = batch.inflight = 0
        batch.max_events, batch.max_bytes, batch.max_buffer = 2, 100, 200
        batch.wanted = False
        assert batch.add(b"abc", 3, 1, 1, False) == 0
        assert batch.ready == [b"abc"]
        assert batch.add(b"de", 2, 1, 0, False) == 1  # max_events: WAKE
        assert (batch.ready, batch.ready_bytes, batch.ready_events) == ([b"abc", b"de"], 5, 2)
        batch.ready = ("not", "a list")
        with pytest.raises(TypeError, match="not a list or None"):
            batch.add(b"x", 1, 1, 0, False)
