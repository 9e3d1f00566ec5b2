"""delta_buffer(): periodic and size-triggered writes, and the tail always persisted."""

from __future__ import annotations

import asyncio
import logging

import pytest

from streamboost import Delta, delta_buffer, drain_deferred


def joined(deltas: list[Delta]) -> str:
    text = ""
    for delta in deltas:
        assert delta.offset == len(text)  # in order, no gap, no overlap
        text += delta.text
    return text


async def test_writes_every_interval_and_once_at_exit() -> None:
    deltas: list[Delta] = []

    async def sink(delta: Delta) -> None:
        deltas.append(delta)

    async with delta_buffer(sink, interval=0.02, min_chars=10_000) as buffer:
        buffer.append("hello ")
        for _ in range(500):  # until the interval write happened
            if deltas:
                break
            await asyncio.sleep(0.005)
        assert deltas and deltas[0].text == "hello " and not deltas[0].final
        buffer.append("world")
    assert joined(deltas) == "hello world"
    assert deltas[-1].final and [d.final for d in deltas].count(True) == 1
    assert (buffer.pending, buffer.persisted, buffer.writes) == (0, 11, len(deltas))


async def test_min_chars_triggers_a_write_before_the_interval() -> None:
    deltas: list[Delta] = []
    async with delta_buffer(deltas.append, interval=60, min_chars=10) as buffer:
        buffer.append("0123456789abc")
        for _ in range(500):
            if deltas:
                break
            await asyncio.sleep(0.005)
        assert deltas and deltas[0].text == "0123456789abc"
    assert joined(deltas) == "0123456789abc" and deltas[-1].final


async def test_cancellation_still_persists_the_tail() -> None:
    deltas: list[Delta] = []
    appended: list[str] = []
    started = asyncio.Event()

    async def slow_sink(delta: Delta) -> None:
        await asyncio.sleep(0.01)
        deltas.append(delta)

    async def stream() -> None:
        async with delta_buffer(slow_sink, interval=60, min_chars=10_000) as buffer:
            for n in range(1_000):
                token = f"t{n} "
                buffer.append(token)
                appended.append(token)
                started.set()
                await asyncio.sleep(0.001)

    task = asyncio.create_task(stream())
    await started.wait()
    await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await drain_deferred(5) == 0  # the shielded last write finishes
    assert joined(deltas) == "".join(appended) and deltas[-1].final


async def test_a_failed_write_keeps_the_text_for_the_next_one() -> None:
    deltas: list[Delta] = []
    failures = 2

    def sink(delta: Delta) -> None:  # sync sinks run in the dedicated thread pool
        nonlocal failures
        if failures:
            failures -= 1
            raise ConnectionError("down")
        deltas.append(delta)

    async with delta_buffer(sink, interval=0.01, min_chars=5, retries=5) as buffer:
        for n in range(20):
            buffer.append(f"{n},")
            await asyncio.sleep(0.002)
    assert joined(deltas) == "".join(f"{n}," for n in range(20))
    assert deltas[-1].final


async def test_error_in_the_body_still_persists_the_tail() -> None:
    deltas: list[Delta] = []
    with pytest.raises(RuntimeError, match="model crashed"):
        async with delta_buffer(deltas.append) as buffer:
            buffer.append("partial answer")
            raise RuntimeError("model crashed")
    assert joined(deltas) == "partial answer" and deltas[-1].final


def test_options_are_validated() -> None:
    with pytest.raises(ValueError, match="interval=0"):
        delta_buffer(print, interval=0)
    with pytest.raises(ValueError, match="min_chars=0"):
        delta_buffer(print, min_chars=0)


async def test_a_lost_tail_is_logged_by_size_not_by_content(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def failing(delta: Delta) -> None:
        raise ConnectionError("database down")

    with caplog.at_level(logging.ERROR, logger="streamboost.deferred"):
        async with delta_buffer(failing, interval=60, retries=0) as buf:
            buf.append("my secret answer")
        await drain_deferred(5)
    assert "16 characters at offset 0 not persisted" in caplog.text
    assert "secret" not in caplog.text
