"""On a loop whose timers fire over a quarter window late, every event goes out at once (13.3).

A saturated loop's turns last hundreds of milliseconds, so a batch's timer and the flusher
task after it each add one, while the server alone writes an event when the app emits it.
``_lag.LoopLag`` notices a stream's timer (or a send finding its batch due) a quarter window late,
and while its probe timer keeps finding the loop late, the write-at-once rule holds for every
whole event, C and Python alike. The loop's clock is fake (``FakeTimeLoop.now``), moved by the
test. One ``asyncio.sleep(0)`` runs exactly one turn, the test's own step first: a timer due
in that turn has fired when the next turn's ``sleep(0)`` returns, the task it starts one turn
later still.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import pytest
from tests.coalesce_apps import driven_stream, openai
from tests.test_coalesce_due import (
    FIELDS,
    KERNELS,
    START,
    WINDOW,
    FakeTimeLoop,
    Kernel,
    _body,
    _run,
)

from streamboost import CoalesceConfig
from streamboost._stream import NATIVE, _kernel
from streamboost._stream._kernel import PySender
from streamboost._stream._lag import ON_TIME, LoopLag
from streamboost._stream._senders import Coalesced

GENERAL = [0]  # calls of the Python sender's general send (the kernel did not take the chunk)


@pytest.fixture(autouse=True)
def _count_general(monkeypatch: pytest.MonkeyPatch) -> None:
    general = Coalesced.general

    def counted(self: Coalesced, message: dict[str, Any]) -> Awaitable[None]:
        GENERAL[0] += 1
        return general(self, message)

    monkeypatch.setattr(Coalesced, "general", counted)


async def _script(
    kernel: Kernel, steps: list[tuple[str, Any]], send_timeout: float | None = None
) -> tuple[Any, ...]:
    """Run ``steps`` on one stream: ``("send", token)``, ``("wait", seconds)`` (loop time
    moves), ``("turn", n)`` (n loop turns). Returns, per step, how many writes the server had,
    whether the loop counted as late and the Python sender's calls so far; then the writes,
    the record and the tasks made."""
    loop = asyncio.get_running_loop()
    assert isinstance(loop, FakeTimeLoop)
    config = CoalesceConfig(window=WINDOW, send_timeout=send_timeout)
    stream, writes = driven_stream(config, kernel)
    send = stream.kernel.send
    await send(dict(START))
    assert stream._coalesced is not None
    assert stream._coalesced.write_now == (send_timeout is None)
    lag = LoopLag.of(loop, WINDOW)
    tasks = loop.tasks
    seen = []
    GENERAL[0] = 0
    for what, value in steps:
        if what == "send":
            await send(_body(openai(value)))
        elif what == "wait":
            loop.now += value
        else:
            for _ in range(value):
                await asyncio.sleep(0)
        seen.append((len(writes), lag.late, GENERAL[0]))
    coalescer = stream._coalesced
    assert coalescer is not None
    result = (
        seen,
        list(writes),
        tuple(getattr(stream.record, name) for name in FIELDS),
        loop.tasks - tasks,
    )
    await send(_body(b"", more=False))
    coalescer.close()
    return result


def _sends(*tokens: str) -> list[tuple[str, Any]]:
    return [("send", token) for token in tokens]


# t0 at once (the first token), t1 at once (a window after it), t1j right behind t1 at once
# too (one short gap is jitter), t2 buffered (a second short gap in a row).
OPENING = [*_sends("t0"), ("wait", 2 * WINDOW), *_sends("t1", "t1j", "t2")]
OPENED = ("t0", "t1", "t1j", "t2")  # the events OPENING sends
# t2's timer fires 1.5 windows late: the loop lags; the flusher's task writes t2.
LATE_TIMER = [("wait", 2.5 * WINDOW), ("turn", 3)]


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("late", [0.3, 1.5])  # windows late: past the quarter, past a whole
def test_a_timer_past_a_quarter_window_late_has_every_event_written_at_once(
    kernel: Kernel, late: float
) -> None:
    timer = [("wait", (1 + late) * WINDOW), ("turn", 3)]
    seen, writes, record, tasks = _run(
        _script(kernel, [*OPENING, *timer, *_sends("t3", "t4", "t5")])
    )
    assert [late for _, late, _ in seen] == [False] * 6 + [True] * 4
    assert writes == [openai(name) for name in (*OPENED, "t3", "t4", "t5")]
    # Each send wrote its event: t3 as a quiet stream's, t4 as one short gap's, t5 (a second
    # short gap) only because the loop lags; the kernel took each (no call of the Python sender).
    calls = seen[-4][2]
    assert [(count, calls) for count, _, calls in seen[-4:]] == [(n, calls) for n in (4, 5, 6, 7)]
    assert record == (7, 7, 7, 7, len(b"".join(writes)))
    assert tasks == 1  # t2's flusher; the events written at once made none


@pytest.mark.parametrize("kernel", KERNELS)
def test_a_bounded_write_follows_the_lag_too(kernel: Kernel) -> None:
    """With ``send_timeout`` the Coalescer writes every event itself, under the same rule."""
    steps = [*OPENING, *LATE_TIMER, *_sends("t3", "t4", "t5")]
    seen, writes, record, _ = _run(_script(kernel, steps, send_timeout=5.0))
    assert [count for count, _, _ in seen[-4:]] == [4, 5, 6, 7]
    assert writes == [openai(name) for name in (*OPENED, "t3", "t4", "t5")]
    assert record == (7, 7, 7, 7, len(b"".join(writes)))


ON_TIME_PROBE = [("wait", WINDOW), ("turn", 2)]  # the probe fires when asked
LATE_PROBE = [("wait", 2 * WINDOW), ("turn", 2)]  # a window late


@pytest.mark.parametrize("kernel", KERNELS)
def test_batching_resumes_when_the_probe_finds_the_loop_on_time_long_enough(
    kernel: Kernel,
) -> None:
    probes = ON_TIME_PROBE * ON_TIME
    seen, writes, _, _ = _run(
        _script(kernel, [*OPENING, *LATE_TIMER, *probes, *_sends("t3", "t4", "t5")])
    )
    late = [late for _, late, _ in seen]
    # Late through the first ON_TIME - 1 probes on time (each probe's turn is every 2nd step).
    assert late[6 : 7 + 2 * (ON_TIME - 1)] == [True] * (2 * ON_TIME - 1)
    assert late[-4:] == [False] * 4
    # t3 comes long after t2: at once; t4 right behind it too (one short gap is jitter); t5,
    # a second short gap in a row, waits for its timer.
    assert writes == [openai(name) for name in (*OPENED, "t3", "t4")]


@pytest.mark.parametrize("kernel", KERNELS)
def test_a_late_probe_starts_the_count_of_on_time_probes_again(kernel: Kernel) -> None:
    almost = ON_TIME_PROBE * (ON_TIME - 1)
    steps = [*OPENING, *LATE_TIMER, *almost, *LATE_PROBE, *almost, *_sends("t3", "t4", "t5")]
    seen, writes, _, _ = _run(_script(kernel, steps))
    assert all(late for _, late, _ in seen[6:])
    assert writes == [openai(name) for name in (*OPENED, "t3", "t4", "t5")]


@pytest.mark.parametrize("kernel", KERNELS)
def test_a_probe_that_fires_late_keeps_the_loop_late(kernel: Kernel) -> None:
    still_late = [("wait", 2.5 * WINDOW), ("turn", 2), ("wait", 3 * WINDOW), ("turn", 2)]
    seen, writes, _, _ = _run(
        _script(kernel, [*OPENING, *LATE_TIMER, *still_late, *_sends("t3", "t4", "t5")])
    )
    assert all(late for _, late, _ in seen[6:])
    assert writes == [openai(name) for name in (*OPENED, "t3", "t4", "t5")]


@pytest.mark.parametrize("kernel", KERNELS)
def test_a_timer_less_than_a_quarter_window_late_leaves_batching_on(kernel: Kernel) -> None:
    slightly = [("wait", 1.2 * WINDOW), ("turn", 3)]  # a fifth of a window late
    steps = [*OPENING, *slightly, *_sends("t3", "t4", "t5")]
    seen, writes, _, tasks = _run(_script(kernel, steps))
    assert not any(late for _, late, _ in seen)
    # t3 comes long after t2: at once; t4 right behind it too (jitter); t5 is buffered.
    assert writes == [openai(name) for name in (*OPENED, "t3", "t4")]
    assert tasks == 1


@pytest.mark.parametrize("kernel", KERNELS)
def test_a_send_that_finds_its_batch_long_past_due_also_marks_the_loop_late(
    kernel: Kernel,
) -> None:
    # t3 comes 1.5 windows after t2's due time, its timer not fired: t3 joins t2's batch,
    # written by the flusher the next turn; t4 and t5 then go at once.
    steps = [*OPENING, ("wait", 2.5 * WINDOW), *_sends("t3"), ("turn", 2), *_sends("t4", "t5")]
    seen, writes, _, _ = _run(_script(kernel, steps))
    assert [late for _, late, _ in seen] == [False] * 6 + [True] * 4
    t0, t1, t2, t3, t4, t5 = (openai(f"t{i}") for i in range(6))
    assert writes == [t0, t1, openai("t1j"), t2 + t3, t4, t5]


@pytest.mark.skipif(not NATIVE, reason="streamboost._speedups is not built")
@pytest.mark.parametrize("late", [0.1, 0.5, 4.0])
@pytest.mark.parametrize("probe", [0.0, 0.1, 2.0])
def test_the_c_and_python_kernels_follow_the_lag_alike(late: float, probe: float) -> None:
    steps = [
        *OPENING,
        ("wait", (1 + late) * WINDOW),
        ("turn", 3),
        *_sends("t3", "t4"),
        ("wait", (1 + probe) * WINDOW),
        ("turn", 2),
        *_sends("t5", "t6", "t7"),
        ("wait", 2 * WINDOW),
        ("turn", 2),
    ]
    assert _run(_script(_kernel.Sender, steps)) == _run(_script(PySender, steps))
