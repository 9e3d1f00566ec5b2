"""The app's ``receive()``: the kernel's ``Receiving`` (C) and its twin, ``receiving``.

Both are driven the same way, by asyncio and by hand (``send``/``throw``/``close``, what a
coroutine awaiting them does), and must give the same answers: the server's message passes
through, a disconnect is told to the listener before the app has it, exceptions thrown in
reach the server's awaitable, and ``create_task`` takes either.
"""

from __future__ import annotations

import asyncio
import collections.abc
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from streamboost._stream import NATIVE, _kernel
from streamboost._stream._receiving import receiving

Receive = Callable[[], Awaitable[Any]]

TWINS: list[Any] = [pytest.param(receiving, id="python")]
if NATIVE:
    TWINS.append(pytest.param(_kernel.Receiving, id="c"))


class Listener:
    def __init__(self, server_receive: Receive) -> None:
        self.server_receive = server_receive
        self.calls = 0
        self.disconnects = 0

    def disconnected(self) -> None:
        self.disconnects += 1


def counting(listener: Listener, messages: list[dict[str, Any]]) -> Receive:
    async def server_receive() -> dict[str, Any]:
        listener.calls += 1
        await asyncio.sleep(0)  # one step that yields to the loop
        return messages.pop(0)

    return server_receive


@pytest.mark.parametrize("make", TWINS)
async def test_messages_pass_through_and_only_a_disconnect_is_told(make: Any) -> None:
    listener = Listener(lambda: None)  # type: ignore[arg-type, return-value]
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": b"x"},
        {"type": "http.disconnect"},
    ]
    listener.server_receive = counting(listener, messages)
    first = await make(listener)
    assert first == {"type": "http.request", "body": b"x"}
    assert listener.disconnects == 0
    second = await make(listener)
    assert second == {"type": "http.disconnect"}
    assert (listener.calls, listener.disconnects) == (2, 1)


@pytest.mark.parametrize("make", TWINS)
async def test_the_server_is_called_at_the_first_step_not_when_made(make: Any) -> None:
    listener = Listener(lambda: None)  # type: ignore[arg-type, return-value]
    listener.server_receive = counting(listener, [{"type": "http.disconnect"}])
    pending = make(listener)
    assert listener.calls == 0
    assert await pending == {"type": "http.disconnect"}
    assert listener.calls == 1


@pytest.mark.parametrize("make", TWINS)
async def test_create_task_and_a_future_as_the_servers_awaitable(make: Any) -> None:
    loop = asyncio.get_running_loop()
    future: asyncio.Future[dict[str, Any]] = loop.create_future()
    listener = Listener(lambda: future)
    pending = make(listener)
    assert asyncio.iscoroutine(pending)
    task = asyncio.create_task(pending)
    await asyncio.sleep(0)
    assert not task.done()
    future.set_result({"type": "http.disconnect"})
    assert await task == {"type": "http.disconnect"}
    assert listener.disconnects == 1


@pytest.mark.parametrize("make", TWINS)
async def test_a_cancel_reaches_the_servers_receive(make: Any) -> None:
    seen: list[str] = []

    async def server_receive() -> dict[str, Any]:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise
        return {}

    listener = Listener(server_receive)
    task = asyncio.ensure_future(make(listener))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen == ["cancelled"]
    assert listener.disconnects == 0


def drive(make: Any, server_receive: Receive) -> tuple[Listener, Any]:
    listener = Listener(server_receive)
    coro = make(listener)
    assert isinstance(coro, collections.abc.Coroutine)
    return listener, coro


class Step:
    """What a step of the loop yields: anything, sent back in by hand."""

    def __await__(self) -> Any:
        return (yield "step")


@pytest.mark.parametrize("make", TWINS)
def test_by_hand_a_value_sent_in_reaches_the_server_and_its_return_is_the_result(
    make: Any,
) -> None:
    async def server_receive() -> dict[str, Any]:
        got = await Step()
        return {"type": "http.disconnect", "got": got}

    listener, coro = drive(make, server_receive)
    assert coro.send(None) == "step"
    with pytest.raises(StopIteration) as stop:
        coro.send("in")
    assert stop.value.value == {"type": "http.disconnect", "got": "in"}
    assert listener.disconnects == 1


@pytest.mark.parametrize("make", TWINS)
def test_by_hand_an_exception_the_server_turns_into_a_message(make: Any) -> None:
    async def server_receive() -> dict[str, Any]:
        try:
            await Step()
        except ValueError:
            return {"type": "http.disconnect"}
        return {"type": "http.request"}

    listener, coro = drive(make, server_receive)
    assert coro.send(None) == "step"
    with pytest.raises(StopIteration) as stop:
        coro.throw(ValueError("gone"))
    assert stop.value.value == {"type": "http.disconnect"}
    assert listener.disconnects == 1


@pytest.mark.parametrize("make", TWINS)
def test_by_hand_an_exception_the_server_lets_out(make: Any) -> None:
    async def server_receive() -> dict[str, Any]:
        await Step()
        return {"type": "http.request"}

    listener, coro = drive(make, server_receive)
    coro.send(None)
    with pytest.raises(ValueError, match="gone"):
        coro.throw(ValueError("gone"))
    assert listener.disconnects == 0


@pytest.mark.parametrize("make", TWINS)
def test_by_hand_thrown_or_closed_before_the_first_step(make: Any) -> None:
    calls: list[int] = []

    async def server_receive() -> dict[str, Any]:
        calls.append(1)
        return {"type": "http.disconnect"}

    _, coro = drive(make, server_receive)
    with pytest.raises(KeyError):
        coro.throw(KeyError("early"))
    _, coro = drive(make, server_receive)
    coro.close()
    assert calls == []


@pytest.mark.parametrize("make", TWINS)
def test_by_hand_close_while_pending_closes_the_servers_awaitable(make: Any) -> None:
    closed: list[bool] = []

    async def server_receive() -> dict[str, Any]:
        try:
            await Step()
        finally:
            closed.append(True)
        return {}

    _, coro = drive(make, server_receive)
    coro.send(None)
    coro.close()
    assert closed == [True]


@pytest.mark.parametrize("make", TWINS)
async def test_a_message_without_a_type_fails_as_the_app_would_see_it(make: Any) -> None:
    async def server_receive() -> dict[str, Any]:
        return {}

    with pytest.raises(KeyError):
        await make(Listener(server_receive))


class _NoThrow:
    """A server's awaitable whose iterator has no throw() (granian's ``PyFutureAwaitable``)."""

    def __init__(self, future: asyncio.Future[Any]) -> None:
        self._future = future

    def __await__(self) -> Any:
        return self

    def __iter__(self) -> Any:
        return self

    def __next__(self) -> Any:
        if not self._future.done():
            return self._future  # the loop waits on it, as on any asyncio future
        raise StopIteration(self._future.result())


@pytest.mark.parametrize("make", TWINS)
async def test_a_cancel_reaches_the_app_when_the_server_awaitable_has_no_throw(
    make: Any,
) -> None:
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    listener = Listener(lambda: _NoThrow(future))
    task = asyncio.ensure_future(make(listener))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert listener.disconnects == 0
