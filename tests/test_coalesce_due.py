"""A send that finds its batch due starts the flusher at once, C and Python alike (issue 13).

On a loaded loop the window timer fires late, and the flusher task it starts runs a turn later
still. A send that finds the batch due (the app is sending again) starts the flusher itself,
so its first step, the next turn, writes the batch with every chunk the app sent meanwhile.
The loop's clock here is fake (``FakeTimeLoop.now``), moved by the test between sends; the
sends never yield to the loop, so no timer or task runs between them, and one
``asyncio.sleep(0)`` lets exactly one turn run (the ready callbacks in order, the due timers
after them).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import pytest
from tests.coalesce_apps import driven_stream, openai

from streamboost import CoalesceConfig
from streamboost._stream import NATIVE, _kernel
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
    """An event loop whose ``time()`` is ``now``, moved only by the test; counts its tasks."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 1000.0
        self.tasks = 0

    def time(self) -> float:
        return self.now

    def create_task(self, coro: Any, **kwargs: Any) -> Any:
        self.tasks += 1
        return super().create_task(coro, **kwargs)


def _run(main: Coroutine[Any, Any, Any]) -> Any:
    loop = FakeTimeLoop()
    try:
        return loop.run_until_complete(loop.create_task(main))
    finally:
        loop.close()


def _body(data: bytes, more: bool = True) -> dict[str, Any]:
    return {"type": "http.response.body", "body": data, "more_body": more}


async def _late(kernel: Kernel, after: float, lasts: list[bytes], turns: int) -> tuple[Any, ...]:
    """Three tokens written at once (the first; one a window later; one right behind it, as
    one short gap is jitter), a fourth buffered; then ``after`` seconds of loop time, the
    chunks ``lasts`` and ``turns`` loop turns: what the server got, the record, and the tasks
    made since the batch formed."""
    loop = asyncio.get_running_loop()
    assert isinstance(loop, FakeTimeLoop)
    stream, writes = driven_stream(CoalesceConfig(window=WINDOW), kernel)
    send = stream.kernel.send
    await send(dict(START))
    await send(_body(openai("t0")))  # the first token: at once
    loop.now += 2 * WINDOW
    await send(_body(openai("t1")))  # a window after the last write: at once
    await send(_body(openai("t1j")))  # right behind it: at once (one short gap: jitter)
    await send(_body(openai("t2")))  # a second short gap: buffered, due a window from now
    tasks = loop.tasks
    loop.now += after
    for last in lasts:
        await send(_body(last))
    in_sends = len(writes)
    for _ in range(turns):
        await asyncio.sleep(0)
    coalescer = stream._coalesced
    assert coalescer is not None and coalescer.flusher is not None
    seen = (
        in_sends,
        list(writes),
        tuple(getattr(stream.record, name) for name in FIELDS),
        loop.tasks - tasks,
    )
    await send(_body(b"", more=False))  # the body's end writes whatever still waits
    assert b"".join(writes).endswith(lasts[-1] if lasts else openai("t2"))
    coalescer.close()
    return seen


@pytest.mark.parametrize("kernel", KERNELS)
def test_a_send_that_finds_the_batch_due_has_it_written_at_the_next_turn(
    kernel: Kernel,
) -> None:
    lasts = [openai("t3"), openai("t4")]
    in_sends, writes, record, tasks = _run(_late(kernel, WINDOW * 1.2, lasts, turns=1))
    assert in_sends == 3  # the sends only buffer: the chunks of this turn join the batch
    assert writes == [openai("t0"), openai("t1"), openai("t1j"), openai("t2") + b"".join(lasts)]
    assert record == (6, 6, 6, 4, len(b"".join(writes)))
    assert tasks == 1  # the flusher's, made by the send that found the batch due


@pytest.mark.parametrize("kernel", KERNELS)
def test_a_chunk_of_two_events_that_finds_the_batch_due_alike(kernel: Kernel) -> None:
    last = openai("t3") + openai("t4")  # not one event: the Python sender's general path
    in_sends, writes, record, tasks = _run(_late(kernel, WINDOW * 1.2, [last], turns=1))
    assert in_sends == 3
    assert writes == [openai("t0"), openai("t1"), openai("t1j"), openai("t2") + last]
    assert record == (5, 6, 6, 4, len(b"".join(writes)))
    assert tasks == 1


@pytest.mark.parametrize("kernel", KERNELS)
def test_a_batch_not_yet_due_waits_for_its_timer(kernel: Kernel) -> None:
    _, writes, record, tasks = _run(_late(kernel, WINDOW * 0.8, [openai("t3")], turns=2))
    assert writes == [openai("t0"), openai("t1"), openai("t1j")]  # t2 and t3 wait in the batch
    assert record == (5, 5, 3, 3, len(b"".join(writes)))  # content events count as written
    assert tasks == 0


@pytest.mark.skipif(not NATIVE, reason="streamboost._speedups is not built")
@pytest.mark.parametrize("after", [WINDOW * 0.8, WINDOW, WINDOW * 1.2, WINDOW * 40])
@pytest.mark.parametrize("turns", [0, 1, 2])
def test_the_c_and_python_kernels_flush_a_due_batch_alike(after: float, turns: int) -> None:
    lasts = [openai("t3"), openai("t4")]
    native = _run(_late(_kernel.Sender, after, lasts, turns))
    python = _run(_late(PySender, after, lasts, turns))
    assert native == python
