"""One short gap is jitter, not a burst: the write-at-once rule forgives it, C and Python alike.

On a loaded loop a 20 events/s stream's step runs late and the next on time, so two events
50 ms apart by schedule come under half a window (``quiet_gap``) apart. The second is written
at once all the same when the gap before it was not short (``BatchBase.near``); only two short
gaps in a row (a third event within half a window of the two before it) start a batch. The
loop's clock is fake (``FakeTimeLoop.now``), moved by the test in steps of a millisecond, with
a loop turn after each, so a batch's timer fires when due (never late: batching stays on).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from tests.coalesce_apps import driven_stream, openai
from tests.test_coalesce_due import FIELDS, KERNELS, START, WINDOW, Kernel, _body, _run

from streamboost import CoalesceConfig
from streamboost._stream import NATIVE, _kernel
from streamboost._stream._kernel import PySender

MS = 0.001
# A 20 events/s stream on a jittery loop: each short gap (30, 20, 10 ms) follows a long one.
JITTERED = [50, 50, 30, 70, 50, 20, 80, 50, 10, 90, 50]


async def _feed(
    kernel: Kernel, gaps: list[int], *, split: bool = False, send_timeout: float | None = None
) -> tuple[Any, ...]:
    """The first token, then one event per gap (milliseconds of loop time before it); each
    event one chunk, or two (``split``: a relay's cut, the kernel's split path; the first
    piece ends no event, so the rule sees only the second, as if the event were whole). Returns
    what the server got once everything was due, the record, and whether a flusher was made."""
    loop = asyncio.get_running_loop()
    stream, writes = driven_stream(CoalesceConfig(window=WINDOW, send_timeout=send_timeout), kernel)
    send = stream.kernel.send
    await send(dict(START))
    await send(_body(openai("t0")))  # the first token: at once

    async def wait(ms: int) -> None:
        for _ in range(ms):
            loop.now += MS  # type: ignore[attr-defined]
            await asyncio.sleep(0)

    for i, gap in enumerate(gaps, 1):
        await wait(gap)
        event = openai(f"t{i}")
        if split:
            await send(_body(event[:5]))
            await send(_body(event[5:]))
        else:
            await send(_body(event))
    await wait(2 * round(WINDOW / MS))  # any waiting batch's timer fires
    coalescer = stream._coalesced
    assert coalescer is not None
    seen = (
        list(writes),
        tuple(getattr(stream.record, name) for name in FIELDS),
        coalescer.flusher is not None,
    )
    await send(_body(b"", more=False))
    coalescer.close()
    return seen


def _events(*numbers: int) -> bytes:
    return b"".join(openai(f"t{i}") for i in numbers)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("send_timeout", [None, 5.0], ids=["kernel_writes", "bounded"])
def test_a_sparse_stream_with_jittered_gaps_is_written_event_by_event(
    kernel: Kernel, send_timeout: float | None
) -> None:
    writes, record, flusher = _run(_feed(kernel, JITTERED, send_timeout=send_timeout))
    assert writes == [_events(i) for i in range(len(JITTERED) + 1)]  # no event waited
    count = len(JITTERED) + 1
    assert record == (count, count, count, count, len(_events(*range(count))))
    assert not flusher  # no batch ever waited


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("send_timeout", [None, 5.0], ids=["kernel_writes", "bounded"])
def test_a_dense_stream_still_batches_from_its_third_event_on(
    kernel: Kernel, send_timeout: float | None
) -> None:
    # t1 a window after the first token (quiet), then an event every millisecond: t2's short
    # gap follows a long one (jitter: at once); t3's is the second short gap in a row.
    writes, record, _ = _run(_feed(kernel, [100] + [1] * 10, send_timeout=send_timeout))
    assert writes == [_events(0), _events(1), _events(2), _events(*range(3, 12))]
    assert record[3] == 4


@pytest.mark.parametrize("kernel", KERNELS)
def test_two_short_gaps_in_a_row_start_a_batch_on_a_sparse_stream(kernel: Kernel) -> None:
    # t3 and t4 each come 10 ms after the event before: t3 is forgiven, t4 waits a window
    # (t5 comes 40 ms later, within the window: it joins t4's batch); t6 is quiet again.
    writes, _, _ = _run(_feed(kernel, [50, 50, 10, 10, 40, 60]))
    assert writes == [_events(0), _events(1), _events(2), _events(3), _events(4, 5), _events(6)]


@pytest.mark.parametrize("kernel", KERNELS)
def test_the_first_tokens_gap_does_not_vouch_for_the_next(kernel: Kernel) -> None:
    # An eager event's gap is the time to the first token, not the stream's rhythm: the
    # event right behind it batches, as before.
    writes, _, _ = _run(_feed(kernel, [1, 1, 1]))
    assert writes == [_events(0), _events(1, 2, 3)]


GAPS = [JITTERED, [100] + [1] * 10, [50, 50, 10, 10, 40, 60], [1, 1, 1], [30, 10, 30, 10, 60]]


@pytest.mark.skipif(not NATIVE, reason="streamboost._speedups is not built")
@pytest.mark.parametrize("gaps", GAPS)
@pytest.mark.parametrize("split", [False, True], ids=["whole", "split"])
@pytest.mark.parametrize("send_timeout", [None, 5.0], ids=["kernel_writes", "bounded"])
def test_the_c_and_python_kernels_forgive_jitter_alike(
    gaps: list[int], split: bool, send_timeout: float | None
) -> None:
    native = _run(_feed(_kernel.Sender, gaps, split=split, send_timeout=send_timeout))
    python = _run(_feed(PySender, gaps, split=split, send_timeout=send_timeout))
    assert native == python
