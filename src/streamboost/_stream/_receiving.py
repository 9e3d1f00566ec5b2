"""One ``receive()`` of the app: the server's, awaited through an object with no frame.

A streaming app keeps one ``receive()`` pending for its whole stream to hear the disconnect
(Starlette's ``StreamingResponse``, sse-starlette). A coroutine around the server's would keep
a frame of its own per open stream (~200 B); ``Receiving`` is two slots. It passes the server's
steps through untouched (what it yields goes to the event loop, what is sent or thrown in goes
to it) and shows the message it returns to ``Listener.received`` before the app gets it. Like
a coroutine it calls the server's ``receive`` at its first step, not when it is made, and it
is a ``collections.abc.Coroutine`` (registered), so ``asyncio.create_task(receive())`` and
``ensure_future`` accept it as they accept the coroutine it replaces.
"""

from __future__ import annotations

from collections.abc import Awaitable, Coroutine, Generator
from types import CoroutineType, GeneratorType
from typing import Any, NoReturn, Protocol

from .._types import Message


class Listener(Protocol):
    def server_receive(self) -> Awaitable[Message]:
        """The server's ``receive()`` (called once per ``Receiving``)."""

    def received(self, message: Message) -> None:
        """Sees each message before the app does."""


def _through(awaitable: Awaitable[Message]) -> Generator[Any, Any, Message]:
    """A generator over an awaitable that is no coroutine: something with ``send``/``throw``."""
    return (yield from awaitable.__await__())


class Receiving:
    __slots__ = ("_inner", "_listener")

    def __init__(self, listener: Listener) -> None:
        self._listener = listener
        self._inner: Any = None  # the server's coroutine, from the first step on

    def __await__(self) -> Generator[Any, None, Message]:
        return self  # send/throw/close/__next__: what a generator has

    def __iter__(self) -> Receiving:
        return self

    def __next__(self) -> Any:
        return self.send(None)

    def _start(self) -> Any:
        awaitable = self._listener.server_receive()
        kind: type = type(awaitable)
        inner = awaitable if kind is CoroutineType or kind is GeneratorType else _through(awaitable)
        self._inner = inner
        return inner

    def send(self, value: Any) -> Any:
        inner = self._inner
        if inner is None:
            inner = self._start()
        try:
            return inner.send(value)
        except StopIteration as stop:
            self._listener.received(stop.value)
            raise

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        inner = self._inner
        if inner is None:  # not started (a task cancelled at once): no server receive
            _raise(typ, val, tb)
        try:
            if val is None and tb is None:
                return inner.throw(typ)
            return inner.throw(typ, val, tb)
        except StopIteration as stop:
            self._listener.received(stop.value)
            raise

    def close(self) -> None:
        inner = self._inner
        if inner is not None:
            inner.close()


def _raise(typ: Any, val: Any, tb: Any) -> NoReturn:
    if val is None:
        raise typ
    raise val.with_traceback(tb) if tb is not None else val


Coroutine.register(Receiving)
