"""A batch already due is written by the app's next send, C and Python alike (issue 13).

On a loaded loop the window timer fires late and the flusher task it starts runs a turn later
still, while the app is already sending again: the send that finds the batch due writes it,
with its own chunk. The loop's clock here is fake (``FakeTimeLoop.now``), moved by the test
between sends; the sends never yield to the loop, so no timer or task can run in between and
every write recorded is one a send made.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import pytest
from tests.coalesce_apps import openai

from streamboost import CoalesceConfig, StreamBoost
from streamboost._stream import NATIVE, HTTPStream, _kernel
from streamboost._stream._kernel import PySender

KERNELS = [pytest.param(PySender, id="python")]
if NATIVE:
    KERNELS.append(pytest.param(_kernel.Sender, id="c"))

SCOPE = {"type": "http", "method": "GET", "path": "/", "headers": [], "query_string": b""}
START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"text/event-stream")],
}
WINDOW = 0.05
FIELDS = ("chunks_in", "events", "content_events", "writes", "bytes_out")

Kernel = Callable[[Callable[[Any], Awaitable[None]]], Any]


class FakeTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose ``time()`` is ``now``, moved only by the test."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 1000.0

    def time(self) -> float:
        return self.now


def _run(main: Coroutine[Any, Any, Any]) -> Any:
    loop = FakeTimeLoop()
    try:
        return loop.run_until_complete(main)
    finally:
        loop.close()


async def _app(scope: Any, receive: Any, send: Any) -> None:
    raise AssertionError("not called: the test drives HTTPStream itself")


def _body(data: bytes, more: bool = True) -> dict[str, Any]:
    return {"type": "http.response.body", "body": data, "more_body": more}


async def _late_send(kernel: Kernel, after: float, last: bytes) -> tuple[Any, ...]:
    """Two tokens written at once, a third buffered, then ``after`` seconds of loop time
    and ``last``: what the server got by the end of that send, and the record then."""
    loop = asyncio.get_running_loop()
    assert isinstance(loop, FakeTimeLoop)
    ticks = iter(range(1, 1_000_000))
    boost = StreamBoost(
        _app,
        coalesce=CoalesceConfig(window=WINDOW),
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

    stream = HTTPStream(boost.responses, dict(SCOPE), receive, server_send, kernel=kernel)
    send = stream.kernel.send
    await send(dict(START))
    await send(_body(openai("t0")))  # the first token: at once
    loop.now += 2 * WINDOW
    await send(_body(openai("t1")))  # a window after the last write: at once
    await send(_body(openai("t2")))  # right behind it: buffered, due a window from now
    loop.now += after
    await send(_body(last))
    coalescer = stream._coalesced
    assert coalescer is not None and coalescer.flusher is not None
    flusher = coalescer.flusher
    seen = (
        list(writes),
        tuple(getattr(stream.record, name) for name in FIELDS),
        flusher._timer is None,  # the window timer is off
        flusher._task is None and flusher._kick is None,  # no flusher run made or pending
    )
    await send(_body(b"", more=False))  # the body's end writes whatever still waits
    assert b"".join(writes).endswith(last)
    coalescer.close()
    return seen


@pytest.mark.parametrize("kernel", KERNELS)
def test_the_next_send_writes_a_batch_that_is_due(kernel: Kernel) -> None:
    writes, record, timer_off, no_task = _run(_late_send(kernel, WINDOW * 1.2, openai("t3")))
    assert writes == [openai("t0"), openai("t1"), openai("t2") + openai("t3")]
    assert record == (4, 4, 4, 3, len(b"".join(writes)))
    assert timer_off and no_task


@pytest.mark.parametrize("kernel", KERNELS)
def test_a_chunk_of_two_events_writes_a_batch_that_is_due(kernel: Kernel) -> None:
    last = openai("t3") + openai("t4")  # not one event: the Python sender's general path
    writes, record, timer_off, no_task = _run(_late_send(kernel, WINDOW * 1.2, last))
    assert writes == [openai("t0"), openai("t1"), openai("t2") + last]
    assert record == (4, 5, 5, 3, len(b"".join(writes)))
    assert timer_off and no_task


@pytest.mark.parametrize("kernel", KERNELS)
def test_a_batch_not_yet_due_waits_for_its_timer(kernel: Kernel) -> None:
    writes, record, timer_off, no_task = _run(_late_send(kernel, WINDOW * 0.8, openai("t3")))
    assert writes == [openai("t0"), openai("t1")]  # t2 and t3 wait in the batch
    assert record == (4, 4, 2, 2, len(b"".join(writes)))  # content events count as written
    assert not timer_off and no_task


@pytest.mark.skipif(not NATIVE, reason="streamboost._speedups is not built")
@pytest.mark.parametrize("after", [WINDOW * 0.8, WINDOW, WINDOW * 1.2, WINDOW * 40])
def test_the_c_and_python_kernels_write_a_due_batch_alike(after: float) -> None:
    native = _run(_late_send(_kernel.Sender, after, openai("t3")))
    python = _run(_late_send(PySender, after, openai("t3")))
    assert native == python
