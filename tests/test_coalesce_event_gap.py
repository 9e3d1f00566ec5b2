"""The write-at-once rule's gap is between events, not chunks: C and Python alike.

A relay (``async for chunk in upstream.aiter_bytes(): yield chunk``) can hand on one event as
several reads microseconds apart. A chunk that completes no event is no gap observation: the
gap of a chunk that completes events is measured from the last chunk that completed one, so a
sparse relayed stream (an event every 50 ms) has every event written when its last piece
arrives, however many pieces it came in, while a burst cut the same way still batches. The
loop's clock is fake (``FakeTimeLoop.now``), moved by the test; every ASGI message the server
gets is recorded with the loop time it came at.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from tests.coalesce_apps import DRIVEN_SCOPE, _not_called, openai
from tests.test_coalesce_due import KERNELS, START, Kernel, _body, _run

from streamboost import CoalesceConfig, StreamBoost
from streamboost._stream import NATIVE, HTTPStream, _kernel
from streamboost._stream._kernel import PySender

MS = 0.001
US = 0.000001
# 50 ms apart is sparse for an 80 ms window (half of it is the short gap) and not a window
# apart, so no event goes out as the first after a window idle: the gap rule alone decides.
WINDOW = 0.08
Seen = tuple[float, str, bytes, bool]  # loop time, message type, body, more_body


def _pieces(event: bytes, count: int) -> list[bytes]:
    """``event`` cut into ``count`` pieces of about one size (only the last one ends it)."""
    step = -(-len(event) // count)
    return [event[at : at + step] for at in range(0, len(event), step)]


def _stream(kernel: Kernel, send_timeout: float | None) -> tuple[HTTPStream, list[Seen]]:
    ticks = iter(range(1, 1_000_000))
    boost = StreamBoost(
        _not_called,
        coalesce=CoalesceConfig(window=WINDOW, send_timeout=send_timeout),
        metrics=False,
        otel=False,
        clock=lambda: float(next(ticks)),
    )
    loop = asyncio.get_running_loop()
    seen: list[Seen] = []

    async def server_send(message: dict[str, Any]) -> None:
        body = bytes(message.get("body", b""))
        seen.append((loop.time(), message["type"], body, bool(message.get("more_body"))))

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    scope = dict(DRIVEN_SCOPE)
    return HTTPStream(boost.responses, scope, receive, server_send, kernel=kernel), seen


async def _relay(
    kernel: Kernel, gap_ms: int, count: int, cut: int, *, send_timeout: float | None = None
) -> tuple[list[Seen], list[float], bool]:
    """The first token, then ``count`` events ``gap_ms`` apart, each cut into ``cut`` pieces
    a few microseconds apart (a loop turn after each). Returns every message the server got,
    the loop time each event's last piece was sent at, and whether a batch ever waited."""
    loop = asyncio.get_running_loop()
    stream, seen = _stream(kernel, send_timeout)
    send = stream.kernel.send
    await send(dict(START))
    ended = [loop.time()]
    await send(_body(openai("t0")))  # the first token: at once
    for i in range(1, count + 1):
        for _ in range(gap_ms):
            loop.now += MS  # type: ignore[attr-defined]
            await asyncio.sleep(0)
        for piece in _pieces(openai(f"t{i}"), cut):
            loop.now += 3 * US  # type: ignore[attr-defined]
            await send(_body(piece))
            await asyncio.sleep(0)
        ended.append(loop.time())
    for _ in range(2 * round(WINDOW / MS)):  # any waiting batch's timer fires
        loop.now += MS  # type: ignore[attr-defined]
        await asyncio.sleep(0)
    coalescer = stream._coalesced
    assert coalescer is not None
    waited = coalescer.flusher is not None
    await send(_body(b"", more=False))
    coalescer.close()
    return seen, ended, waited


def _writes(seen: list[Seen]) -> list[tuple[float, bytes]]:
    return [(at, body) for at, kind, body, more in seen if kind == "http.response.body" and more]


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("cut", [2, 3, 5])
@pytest.mark.parametrize("send_timeout", [None, 5.0], ids=["kernel_writes", "bounded"])
def test_a_sparse_relay_has_every_event_written_when_its_last_piece_arrives(
    kernel: Kernel, cut: int, send_timeout: float | None
) -> None:
    seen, ended, waited = _run(_relay(kernel, 50, 10, cut, send_timeout=send_timeout))
    assert seen[0][1] == "http.response.start"
    assert _writes(seen) == [(at, openai(f"t{i}")) for i, at in enumerate(ended)]
    assert seen[-1][1:] == ("http.response.body", b"", False)
    assert not waited  # no batch ever waited for its window


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("cut", [1, 2, 3, 5])
def test_a_burst_cut_the_same_way_still_batches(kernel: Kernel, cut: int) -> None:
    seen, _, waited = _run(_relay(kernel, 1, 40, cut))
    writes = _writes(seen)
    assert b"".join(body for _, body in writes) == b"".join(openai(f"t{i}") for i in range(41))
    assert len(writes) <= 41 / 4  # a window of 50 ms holds ~50 events at 1 ms apart
    assert waited


# Events per write of a burst, as before the gap was between events (a burst's gaps are all
# short, so the pieces' gaps changed nothing). Whole events differ from cut ones past 1 ms:
# an event that joins a waiting batch whole is no gap observation (that path reads no clock),
# so the first after a flush goes out at once; a cut one's last piece is one.
BURSTS = [
    (1, 1, [1, 16, 16, 8]),
    (1, 3, [1, 16, 16, 8]),
    (10, 1, [1, 9, 1, 1, 9, 1, 1, 8]),
    (10, 2, [1, 9, 9, 9, 3]),
    (10, 3, [1, 8, 8, 8, 6]),
    (10, 5, [1, 8, 8, 8, 6]),
]


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize(("gap_ms", "cut", "sizes"), BURSTS)
def test_a_burst_is_written_as_before(
    kernel: Kernel, gap_ms: int, cut: int, sizes: list[int]
) -> None:
    count = sum(sizes) - 1
    writes = _writes(_run(_relay(kernel, gap_ms, count, cut))[0])
    assert [body.count(b"\n\n") for _, body in writes] == sizes


@pytest.mark.skipif(not NATIVE, reason="streamboost._speedups is not built")
@pytest.mark.parametrize("gap_ms", [1, 10, 30, 50])
@pytest.mark.parametrize("cut", [1, 2, 3, 5])
@pytest.mark.parametrize("send_timeout", [None, 5.0], ids=["kernel_writes", "bounded"])
def test_the_c_and_python_kernels_measure_the_gap_alike(
    gap_ms: int, cut: int, send_timeout: float | None
) -> None:
    native = _run(_relay(_kernel.Sender, gap_ms, 12, cut, send_timeout=send_timeout))
    python = _run(_relay(PySender, gap_ms, 12, cut, send_timeout=send_timeout))
    assert native == python


@pytest.mark.parametrize("kernel", KERNELS)
def test_a_piece_that_completes_no_event_is_no_gap_observation(kernel: Kernel) -> None:
    async def main() -> tuple[list[float], list[tuple[float, bool]]]:
        loop = asyncio.get_running_loop()
        stream, _ = _stream(kernel, None)
        send = stream.kernel.send
        await send(dict(START))
        await send(_body(openai("t0")))
        coalescer = stream._coalesced
        assert coalescer is not None
        times, states = [loop.time()], [(coalescer.last_event, coalescer.near)]
        head, middle, tail = _pieces(openai("t1"), 3)
        for piece in (head, middle, tail + openai("t2")[:7], openai("t2")[7:]):
            loop.now += 0.03  # type: ignore[attr-defined]
            await send(_body(piece))
            times.append(loop.time())
            states.append((coalescer.last_event, coalescer.near))
        await send(_body(b"", more=False))
        coalescer.close()
        return times, states

    times, states = _run(main())
    # The pieces before t1's end change nothing; t1's end (90 ms after t0's: not short) and
    # t2's (30 ms after t1's: short) are the observations, each from the one before it.
    unchanged = (times[0], True)
    assert states == [unchanged, unchanged, unchanged, (times[3], False), (times[4], True)]
